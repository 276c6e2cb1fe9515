"""Keyword-only helpers that speak to a live server over HTTP."""

from typing import Any

import httpx


def create_env(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/environments", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_state(api: httpx.Client, env: str, state: str, *, timeout: float = 60) -> dict[str, Any]:
    response = api.get(f"/v1/environments/{env}/wait", params={"state": state, "timeout": timeout})
    assert response.status_code == 200, response.text
    return dict(response.json())


def running_env(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    env = create_env(api, **fields)
    return wait_state(api, env["id"], "running")


def stop(api: httpx.Client, env: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/v1/environments/{env}/stop", json=body or None)
    assert response.status_code == 200, response.text
    return dict(response.json())


def delete(api: httpx.Client, env: str) -> None:
    response = api.delete(f"/v1/environments/{env}")
    assert response.status_code in (200, 202), response.text
    wait_state(api, env, "deleted")


def events(api: httpx.Client, env: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/environments/{env}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def scoped_key(
    api: httpx.Client, name: str, *permissions: str, environment_ids: list[str] | None = None
) -> str:
    """The secret of a new scoped key with `permissions`, restricted to
    `environment_ids` when they are given."""
    body: dict[str, Any] = {"name": name, "permissions": list(permissions)}
    if environment_ids is not None:
        body["environment_ids"] = environment_ids
    response = api.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def state_changes(api: httpx.Client, env: str) -> list[tuple[str, str]]:
    return [
        (e["from_state"], e["to_state"])
        for e in events(api, env)
        if e["type"] == "environment.state_changed"
    ]


def assert_message(response: httpx.Response, status: int, field: str) -> str:
    """A dialect's error body of one field holding a non-empty message (CloudCLI's
    `error`, CamposCloud's `message`); returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {field} and isinstance(body[field], str) and body[field]
    return str(body[field])


def assert_envelope(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])
