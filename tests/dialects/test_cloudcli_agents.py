"""The CloudCLI agent paths: the environment chosen in the body, the project by name
under /workspace, streamed by default, CloudCLI's error shape, and the models."""

from typing import Any

import docker
import httpx
import pytest

from tests.support.agents import (
    AGENT_IMAGE,
    SecretWatch,
    new_secret,
    put_claude_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.engine import read_file
from tests.support.factories import assert_message, delete, running_env
from tests.support.inside import sse_events

pytestmark = pytest.mark.docker
URL = "/api/v1/agent/execute"


def _error(response: httpx.Response, status: int) -> str:
    return assert_message(response, status, "error")


def test_execute_streams_data_events_for_the_environment_named_in_the_body(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    require_agent_image(docker_client)
    env = running_env(api, name="cloudcli-agent", image=AGENT_IMAGE)
    secret, port = new_secret("sk-ant"), 18841
    watch = SecretWatch(secret)
    put_claude_provider(api, "cloudcli-claude", port=port, secret=secret)
    start_model_server(
        env["id"],
        port=port,
        path="/workspace/backend/done.txt",
        content="from cloudcli",
        final="CloudCLI run finished.",
    )
    body = {
        "environmentId": "cloudcli-agent",
        "projectName": "backend",
        "message": "Create done.txt",
        "provider": "claude",
        "modelProvider": "cloudcli-claude",
    }
    with api.stream("POST", URL, json=body, timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received: list[dict[str, Any]] = [data for _, _, data in sse_events(response)]
    for data in received:
        watch.seen(str(data))
    types = [d["type"] for d in received]
    assert types[0] == "run.started" and types[-2:] == ["result", "done"]
    assert "tool_use" in types and "tool_result" in types
    assert (
        received[-2]["status"] == "completed" and received[-2]["text"] == "CloudCLI run finished."
    )
    assert received[0]["cwd"] == "/workspace/backend"
    assert read_file(docker_client, env["id"], "/workspace/backend/done.txt") == b"from cloudcli"
    # stream: false answers once, with the whole run.
    answer = watch.response(api.post(URL, json={**body, "stream": False}, timeout=300))
    assert answer.status_code == 200 and answer.json()["status"] == "completed"
    models = watch.response(api.get("/api/v1/agent/models")).json()
    assert api.get("/api/v1/agents/models").json() == models
    assert models["success"] is True
    claude = next(m for m in models["data"] if m["id"] == "claude")
    assert claude["available"] is True
    assert {"value": "claude-sonnet-4-5", "label": "claude-sonnet-4-5"} in claude["models"][
        "OPTIONS"
    ]
    api.delete("/v1/model-providers/cloudcli-claude")
    delete(api, env["id"])


def test_cloudcli_errors_use_its_error_shape(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    assert "not found" in _error(
        api.post(URL, json={"environmentId": "no-such-env", "message": "hi"}), 404
    )
    assert _error(api.post(URL, json={"message": "hi"}), 400)
    env = running_env(api, name="cloudcli-plain")
    put_claude_provider(api, "cloudcli-424")
    base = {"environmentId": env["id"], "message": "hi", "modelProvider": "cloudcli-424"}
    assert "not installed" in _error(api.post(URL, json=base), 424)
    assert _error(api.post(URL, json={**base, "projectName": "a/b"}), 400)
    assert _error(api.post(URL, json={**base, "provider": "cursor"}), 400)
    assert _error(api.get("/api/v1/agent/models", headers={"X-API-KEY": "wrong"}), 401)
    api.delete("/v1/model-providers/cloudcli-424")
    delete(api, env["id"])
