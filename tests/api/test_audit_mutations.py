"""Every mutating call leaves an `api.request` event in its organization's log with
who, the route and the status, refused ones included, and never a body."""

import uuid
from typing import Any

import httpx

from tests.support.factories import create_env, delete, scoped_key
from tests.support.polling import eventually
from tests.support.server import LiveServer


def _requests(api: httpx.Client) -> list[dict[str, Any]]:
    page = api.get("/v1/events", params={"limit": 1000})
    assert page.status_code == 200, page.text
    found = [e for e in page.json()["data"] if e["type"] == "api.request"]
    while page.json()["has_more"]:
        page = api.get("/v1/events", params={"limit": 1000, "after": page.json()["next_cursor"]})
        found += [e for e in page.json()["data"] if e["type"] == "api.request"]
    return found


def test_mutations_and_refusals_are_audited_without_bodies(
    api: httpx.Client, server: LiveServer
) -> None:
    marker = f"secret-{uuid.uuid4().hex}"
    env = create_env(api, name=f"audit-{uuid.uuid4().hex[:8]}", labels={"m": marker})
    reader = scoped_key(api, "audit-reader", "environments:read")
    with server.client(reader) as limited:
        refused = limited.patch(f"/v1/environments/{env['id']}", json={"labels": {"m": marker}})
        assert refused.status_code == 403, refused.text
    with server.client("") as anonymous:
        assert anonymous.post("/v1/environments", json={"name": "x"}).status_code == 401
    reader_id = next(
        k["id"] for k in api.get("/v1/keys").json()["data"] if k["name"] == "audit-reader"
    )

    def logged() -> list[dict[str, Any]]:
        found = _requests(api)
        mine = [e for e in found if e["data"]["key_id"] == reader_id]
        return found if mine else []

    found = eventually(logged, what="the refused PATCH audited")
    refusal = next(e for e in found if e["data"]["key_id"] == reader_id)
    assert refusal["data"] == {
        "method": "PATCH",
        "route": "/v1/environments/{env}",
        "status": 403,
        "key_id": reader_id,
    }
    assert refusal["actor"] == f"key:{reader_id}"
    assert any(
        e["data"]["route"] == "/v1/environments" and e["data"]["status"] == 201 for e in found
    )
    assert marker not in str(found)
    delete(api, env["id"])
