"""Keyword-only helpers for work items on self-hosted environments, over real HTTP."""

import re
from typing import Any

import httpx
import pytest

from tests.support.factories import create_env, wait_state

#: The Work item object of the Qoder brief (001), field for field and in order.
BRIEF_FIELDS = [
    "id",
    "type",
    "environment_id",
    "data",
    "state",
    "created_at",
    "acknowledged_at",
    "started_at",
    "latest_heartbeat_at",
    "stop_requested_at",
    "stopped_at",
    "metadata",
]
#: The brief's example payload.
SESSION_DATA = {"type": "session", "id": "sess_019f3be3fa66750bb9a1fbcde85b5fe1"}


def qoder(env_id: str, suffix: str = "") -> str:
    return f"/api/v1/cloud/environments/{env_id}/work{suffix}"


def native(env: str, suffix: str = "") -> str:
    return f"/v1/environments/{env}/work{suffix}"


def env_name(prefix: str, request: pytest.FixtureRequest) -> str:
    """An environment name for the test asking: `prefix` and the test's name, in the
    characters a name allows."""
    return re.sub(r"[^A-Za-z0-9-]", "-", f"{prefix}-{request.node.name}")[:60].strip("-")


def self_hosted_env(api: httpx.Client, *, name: str) -> dict[str, Any]:
    env = create_env(api, name=name, kind="self_hosted")
    return wait_state(api, env["id"], "running")


def queue(api: httpx.Client, env: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("data", SESSION_DATA)
    response = api.post(native(env), json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def get_item(api: httpx.Client, env: str, work_id: str) -> dict[str, Any]:
    response = api.get(native(env, f"/{work_id}"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def item_in_state(
    api: httpx.Client, env: str, state: str, *, worker_id: str = "w-1", **fields: Any
) -> dict[str, Any]:
    """A new item moved to `state` through the protocol itself (ack, heartbeat, stop)."""
    item = queue(api, env, **fields)
    work = native(env, f"/{item['id']}")
    worker = {"Worker-ID": worker_id}
    if state in ("starting", "active", "stopping"):
        assert api.post(f"{work}/ack", headers=worker).status_code == 200
    if state in ("active", "stopping"):
        beat = api.post(f"{work}/heartbeat", params={"expected_last_heartbeat": "NO_HEARTBEAT"})
        assert beat.status_code == 200, beat.text
    if state == "stopping":
        assert api.post(f"{work}/stop").json()["state"] == "stopping"
    if state == "stopped":
        assert api.post(f"{work}/stop", json={"force": True}).json()["state"] == "stopped"
    current = get_item(api, env, item["id"])
    assert current["state"] == state, current
    return current


def assert_qoder_envelope(response: httpx.Response, status: int, error_type: str) -> str:
    """Qoder's error envelope: {"type": "error", "request_id", "error": {"type", "message"}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "request_id", "error"}, body
    assert body["type"] == "error" and body["request_id"], body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


def work_transitions(api: httpx.Client, env: str, work_id: str) -> list[tuple[str, str, str]]:
    response = api.get(native(env, f"/{work_id}/events"), params={"limit": 1000})
    assert response.status_code == 200, response.text
    return [
        (e["from_state"], e["to_state"], e["reason"])
        for e in response.json()["data"]
        if e["type"] == "work.state_changed"
    ]
