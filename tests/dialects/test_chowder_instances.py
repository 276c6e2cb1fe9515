"""Chowder instances on real Docker: an environment of the agent image running the
real OpenClaw gateway, its model server scripted inside the same environment. The
whole story of the brief: provisioning → running with a well-formed gateway_url, a
message answered through the gateway, a scoped key that may read and talk but gets
403 on stop, 502 when the gateway is down, stop → 200 `stopped`, stop again → 409,
start brings it back with its files, delete → 404; no credential anywhere."""

import re
import time
from typing import Any
from urllib.parse import urlparse

import docker
import httpx
import pytest

from tests.support.agents import (
    SecretWatch,
    model_requests,
    new_secret,
    put_claude_provider,
    put_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.engine import container_state, sh
from tests.support.factories import wait_state
from tests.support.server import LiveServer

pytestmark = pytest.mark.docker
FIELDS = {
    "id",
    "organization_id",
    "name",
    "status",
    "model_provider",
    "sandbox_provider",
    "sandbox_id",
    "gateway_url",
    "openclaw_version",
    "openclaw_config",
    "region",
    "error_message",
    "created_at",
    "updated_at",
}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
MODEL_PORT = 18851
ANSWER = "Hello from OpenClaw."


def _detail(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    return body["detail"]


def _wait_status(
    api: httpx.Client, instance_id: str, status: str, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = api.get(f"/v1/instances/{instance_id}/status")
        assert current.status_code == 200, current.text
        if current.json()["status"] == status or time.monotonic() > deadline:
            return dict(current.json())
        time.sleep(0.5)


def _say_hello(api: httpx.Client, instance_id: str, watch: SecretWatch) -> None:
    body = {"model": "claude-sonnet-4-20250514", "input": "Say hello"}
    answer = watch.response(api.post(f"/v1/instances/{instance_id}/responses", json=body))
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["model"] == "claude-sonnet-4-20250514"
    texts = [
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    ]
    assert texts == [ANSWER]


def _create(api: httpx.Client, watch: SecretWatch) -> dict[str, Any]:
    created = watch.response(
        api.post("/v1/instances", json={"name": "my-assistant", "model_provider": "chowder-llm"})
    )
    assert created.status_code == 201, created.text
    instance = created.json()
    assert set(instance) == FIELDS
    assert instance["status"] == "provisioning" and instance["sandbox_provider"] == "sandbox"
    assert instance["sandbox_id"] is None and instance["gateway_url"] is None
    assert instance["openclaw_version"] == "v1" and instance["model_provider"] == "chowder-llm"
    assert STAMP.match(instance["created_at"]) and STAMP.match(instance["updated_at"])
    return dict(instance)


def _check_scoped_key(server: LiveServer, api: httpx.Client, iid: str, watch: SecretWatch) -> None:
    """A key for this instance may read and talk; stopping (or listing) needs the org key."""
    key = api.post(
        "/v1/keys",
        json={
            "name": "chat-widget",
            "permissions": ["instances:read", "instances:interact"],
            "environment_ids": [iid],
        },
    ).json()["key"]
    assert key.startswith("sbk_") and not key.startswith("sbk_org_")
    bearer = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=bearer, timeout=300) as scoped:
        assert watch.response(scoped.get(f"/v1/instances/{iid}")).status_code == 200
        assert "organization key" in _detail(scoped.post(f"/v1/instances/{iid}/stop"), 403)
        _detail(scoped.post(f"/v1/instances/{iid}/start"), 403)
        _detail(scoped.get("/v1/instances"), 403)
        _say_hello(scoped, iid, watch)


def _check_no_credential(
    server: LiveServer, api: httpx.Client, iid: str, watch: SecretWatch
) -> None:
    for path in (
        f"/v1/environments/{iid}",
        f"/v1/environments/{iid}/events?limit=1000",
        f"/v1/environments/{iid}/logs",
        "/v1/instances",
        "/v1/model-providers",
    ):
        assert watch.response(api.get(path)).status_code == 200, path
    watch.seen(server.log_path.read_text())


@pytest.fixture
def sqlite_only(database_url: str | None) -> None:
    """Before the server starts: a minute of the gateway and the engine, which no
    database changes (the lifecycle underneath runs on both elsewhere)."""
    if database_url is not None:
        pytest.skip("a minute of the OpenClaw gateway that no database changes: SQLite only")


@pytest.mark.timeout(900)
def test_instance_lifecycle_through_the_openclaw_gateway(
    sqlite_only: None, server: LiveServer, api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    require_agent_image(docker_client)
    secret = new_secret("sk-llm")
    watch = SecretWatch(secret)
    put_provider(
        api,
        "chowder-llm",
        kind="openai-compatible",
        base_url=f"http://127.0.0.1:{MODEL_PORT}/v1",
        secret=secret,
        models=["scripted-model"],
    )
    iid = _create(api, watch)["id"]

    status = _wait_status(api, iid, "running", timeout=300)
    assert status["status"] == "running", status
    url = urlparse(status["gateway_url"])
    assert (url.scheme, url.netloc) == ("http", urlparse(server.url).netloc)
    assert url.path == f"/preview/{iid}/18789/"
    shown = watch.response(api.get(f"/v1/instances/{iid}")).json()
    assert shown["status"] == "running" and shown["sandbox_id"] == iid
    assert shown["gateway_url"] == status["gateway_url"]

    start_model_server(iid, port=MODEL_PORT, mode="text", final=ANSWER)
    _say_hello(api, iid, watch)
    # The gateway called the model with the stored key, from inside the environment.
    assert {r["authorization"] for r in model_requests(iid)} == {f"Bearer {secret}"}
    session = api.post(
        f"/v1/instances/{iid}/sessions/support-42/responses", json={"input": "again"}
    )
    assert watch.response(session).status_code == 200
    _check_scoped_key(server, api, iid, watch)

    sh(docker_client, iid, "echo kept > /workspace/notes.txt")
    # The gateway goes down: messages answer 502 in Chowder's nested shape.
    sh(docker_client, iid, "pkill -KILL -f '^openclaw-gateway'; sleep 0.5")
    down = _detail(api.post(f"/v1/instances/{iid}/responses", json={"input": "hi"}), 502)
    assert "Gateway unavailable" in down["error"]

    stopped = watch.response(api.post(f"/v1/instances/{iid}/stop"))
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert container_state(docker_client, iid) == "exited"
    assert "not running" in _detail(api.post(f"/v1/instances/{iid}/stop"), 409)
    _detail(api.post(f"/v1/instances/{iid}/responses", json={"input": "hi"}), 409)

    started = watch.response(api.post(f"/v1/instances/{iid}/start", timeout=400))
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert sh(docker_client, iid, "cat /workspace/notes.txt") == "kept\n"
    assert "already running" in _detail(api.post(f"/v1/instances/{iid}/start"), 409)
    start_model_server(iid, port=MODEL_PORT, mode="text", final=ANSWER)
    _say_hello(api, iid, watch)
    streamed = watch.response(
        api.post(f"/v1/instances/{iid}/responses", json={"input": "hi", "stream": True})
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "response.completed" in streamed.text and ANSWER in streamed.text

    _check_no_credential(server, api, iid, watch)
    assert api.delete(f"/v1/instances/{iid}").status_code == 204
    assert _detail(api.get(f"/v1/instances/{iid}"), 404) == "Instance not found."
    wait_state(api, iid, "deleted", timeout=120)
    api.delete("/v1/model-providers/chowder-llm")


def test_instance_requests_are_checked(server: LiveServer, api: httpx.Client) -> None:
    assert _detail(api.get("/v1/instances/env_" + "0" * 32), 404) == "Instance not found."
    no_provider = api.post("/v1/instances", json={"name": "x", "model_provider": "nope"})
    assert "no API key configured" in _detail(no_provider, 400)
    _detail(api.post("/v1/instances", json={"model_provider": "anthropic"}), 400)
    put_claude_provider(api, "chowder-check")
    gateway = api.post(
        "/v1/instances",
        json={
            "name": "x",
            "model_provider": "chowder-check",
            "openclaw_config": {"gateway.port": 1},
        },
    )
    assert "gateway" in _detail(gateway, 400)
    with server.client(key="") as anonymous:
        assert _detail(anonymous.get("/v1/instances"), 401)
    api.delete("/v1/model-providers/chowder-check")
