"""Helpers for agent tests: the agent image, model providers with a fresh secret each,
the scripted model server run inside an environment (the real wire protocols on
127.0.0.1 in the container), and a watch that no answer ever carries a secret."""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.engine import sh

AGENT_IMAGE = "sandbay-agent:latest"
MODEL_SERVER = Path(__file__).with_name("model_server.py")
SERVER_PATH = "/opt/sandbay-test/model_server.py"
SERVER_LOG = "/tmp/model-server.jsonl"
#: A port nothing listens on (discard): a provider there is never reached.
NOWHERE = 9


def require_agent_image(client: docker.DockerClient) -> None:
    """The agent image is built by `make agents-image` (which `make test` runs)."""
    try:
        client.images.get(AGENT_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{AGENT_IMAGE} is missing: run `make agents-image` (make test does)")


def new_secret(prefix: str = "sk-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


def put_provider(
    api: httpx.Client, name: str, *, kind: str, base_url: str, secret: str, models: list[str]
) -> dict[str, Any]:
    body = {"kind": kind, "base_url": base_url, "api_key": secret, "models": models}
    response = api.put(f"/v1/model-providers/{name}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def put_claude_provider(
    api: httpx.Client,
    name: str,
    *,
    port: int = NOWHERE,
    secret: str | None = None,
    model: str = "claude-sonnet-4-5",
) -> dict[str, Any]:
    """An Anthropic provider of `model` at 127.0.0.1:`port` (inside an environment: the
    scripted model server, once it runs there), with a new secret unless one is given."""
    base_url = f"http://127.0.0.1:{port}"
    secret = secret or new_secret()
    return put_provider(
        api, name, kind="anthropic", base_url=base_url, secret=secret, models=[model]
    )


def start_model_server(
    client: docker.DockerClient, api: httpx.Client, env_id: str, *, port: int, **options: Any
) -> None:
    """Copy the scripted model server into the environment and run it there, listening
    on 127.0.0.1:`port` inside. It is started with the engine, not as an API process
    session, so it does not count as activity (the agent run must)."""
    upload = api.put(
        f"/v1/environments/{env_id}/files",
        params={"path": SERVER_PATH},
        content=MODEL_SERVER.read_bytes(),
    )
    assert upload.status_code in (200, 201), upload.text
    argv = ["python3", SERVER_PATH, "--port", str(port), "--log", SERVER_LOG]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    container = client.containers.get(f"sandbay-{env_id}")
    container.exec_run(argv, detach=True)
    probe = ["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{port}/v1/models"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if container.exec_run(probe).exit_code == 0:
            return
        time.sleep(0.2)
    pytest.fail("the model server did not come up inside the environment")


def model_requests(client: docker.DockerClient, env_id: str) -> list[dict[str, Any]]:
    """What the model server saw, read with the engine (not through the API)."""
    text = sh(client, env_id, f"cat {SERVER_LOG} 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class SecretWatch:
    """Every answer a test reads goes through `seen`; a secret in any of them fails."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = secrets
        self.checked = 0

    def seen(self, text: str) -> str:
        self.checked += 1
        for secret in self.secrets:
            assert secret not in text, "a credential appeared in an answer"
        return text

    def response(self, response: httpx.Response) -> httpx.Response:
        self.seen(response.text)
        return response
