"""Helpers for agent tests: the agent image, model providers with a fresh secret each,
the scripted model server (the real wire protocols, on the host's loopback, reached
through the model relay), and a watch that no answer ever carries a secret."""

import atexit
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.polling import eventually

AGENT_IMAGE = "sandbay-agent:latest"
MODEL_SERVER = Path(__file__).with_name("model_server.py")
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
    """An Anthropic provider of `model` at 127.0.0.1:`port` (the scripted model server
    on the host, once it runs there), with a new secret unless one is given."""
    base_url = f"http://127.0.0.1:{port}"
    secret = secret or new_secret()
    return put_provider(
        api, name, kind="anthropic", base_url=base_url, secret=secret, models=[model]
    )


def start_model_server(env_id: str, *, port: int, **options: Any) -> None:
    """Run the scripted model server for the agents of `env_id` on the host's loopback
    at `port`: where a provider's base URL points, the model relay (outside the
    environment) reaches it; nothing inside the environment can. A server left on that
    port by an earlier test is replaced; all are stopped when the tests end."""
    _stop_model_server(port)
    log = Path(tempfile.mkdtemp(prefix="model-server-")) / "requests.jsonl"
    argv = [sys.executable, str(MODEL_SERVER), "--port", str(port), "--log", str(log)]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    _SERVERS[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _LOGS[env_id] = log
    eventually(lambda: _answers(port), what="the model server answering", timeout=30)


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
        return True
    except httpx.TransportError:
        return False


_SERVERS: dict[int, subprocess.Popen[bytes]] = {}
_LOGS: dict[str, Path] = {}


def _stop_model_server(port: int) -> None:
    proc = _SERVERS.pop(port, None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        proc.wait(10)


@atexit.register
def _stop_model_servers() -> None:
    for port in list(_SERVERS):
        _stop_model_server(port)


def model_requests(env_id: str) -> list[dict[str, Any]]:
    """What the model server of `env_id`'s agents saw (its log, on the host)."""
    log = _LOGS.get(env_id)
    text = log.read_text() if log is not None and log.exists() else ""
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
