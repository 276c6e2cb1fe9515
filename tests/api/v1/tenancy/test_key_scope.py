"""A key mints and revokes only keys no wider than itself: permissions, environment
limit and expiry; a limited key lists only keys within its limit."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.factories import assert_envelope
from tests.support.server import LiveServer

ENV_A = "env_" + "a" * 32
ENV_B = "env_" + "b" * 32


def _key(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/keys", json={"name": "k", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def test_limited_key_cannot_mint_an_unlimited_key_or_one_outside_its_limit(
    server: LiveServer, api: httpx.Client
) -> None:
    limited = _key(api, permissions=["keys:write", "keys:read"], environment_ids=[ENV_A])
    with server.client(key=limited["key"]) as client:
        unlimited = client.post("/v1/keys", json={"name": "x", "permissions": ["keys:read"]})
        message = assert_envelope(unlimited, 403, "permission_error")
        assert "environment" in message
        outside = client.post(
            "/v1/keys",
            json={"name": "x", "permissions": ["keys:read"], "environment_ids": [ENV_A, ENV_B]},
        )
        assert ENV_B in assert_envelope(outside, 403, "permission_error")
        org = client.post("/v1/keys", json={"name": "x"})
        assert "organization" in assert_envelope(org, 403, "permission_error")
        within = client.post(
            "/v1/keys",
            json={"name": "x", "permissions": ["keys:read"], "environment_ids": [ENV_A]},
        )
        assert within.status_code == 201, within.text
        assert within.json()["environment_ids"] == [ENV_A]


def test_expiring_key_cannot_mint_a_key_that_outlives_it(
    server: LiveServer, api: httpx.Client
) -> None:
    hour = _key(api, permissions=["keys:write"], expires_at=_in_hours(1))
    with server.client(key=hour["key"]) as client:
        forever = client.post("/v1/keys", json={"name": "x", "permissions": ["keys:write"]})
        assert "expire" in assert_envelope(forever, 403, "permission_error")
        later = client.post(
            "/v1/keys",
            json={"name": "x", "permissions": ["keys:write"], "expires_at": _in_hours(2)},
        )
        assert "expire" in assert_envelope(later, 403, "permission_error")
        sooner = client.post(
            "/v1/keys",
            json={"name": "x", "permissions": ["keys:write"], "expires_at": _in_hours(0.5)},
        )
        assert sooner.status_code == 201, sooner.text


def test_expiring_organization_key_cannot_mint_a_lasting_organization_key(
    server: LiveServer, api: httpx.Client
) -> None:
    hour = _key(api, expires_at=_in_hours(1))
    with server.client(key=hour["key"]) as client:
        forever = client.post("/v1/keys", json={"name": "x"})
        assert "expire" in assert_envelope(forever, 403, "permission_error")
        sooner = client.post("/v1/keys", json={"name": "x", "expires_at": _in_hours(0.5)})
        assert sooner.status_code == 201, sooner.text


def test_limited_key_cannot_revoke_an_organization_key_or_a_wider_key(
    server: LiveServer, api: httpx.Client
) -> None:
    org_key = _key(api)
    other_env = _key(api, permissions=["keys:read"], environment_ids=[ENV_B])
    more_perms = _key(api, permissions=["keys:write", "environments:read"], environment_ids=[ENV_A])
    narrower = _key(api, permissions=["keys:read"], environment_ids=[ENV_A])
    limited = _key(api, permissions=["keys:write", "keys:read"], environment_ids=[ENV_A])
    with server.client(key=limited["key"]) as client:
        refused = client.delete(f"/v1/keys/{org_key['id']}")
        assert "organization" in assert_envelope(refused, 403, "permission_error")
        outside = client.delete(f"/v1/keys/{other_env['id']}")
        message = assert_envelope(outside, 403, "permission_error")
        assert "environment" in message and ENV_B not in message
        wider = client.delete(f"/v1/keys/{more_perms['id']}")
        assert "permission" in assert_envelope(wider, 403, "permission_error")
        assert client.delete(f"/v1/keys/{narrower['id']}").status_code == 200
        assert client.delete(f"/v1/keys/{limited['id']}").status_code == 200  # itself
    with server.client(key=org_key["key"]) as still:
        assert still.get("/v1/environments").status_code == 200
    listed = {k["id"]: k for k in api.get("/v1/keys").json()["data"]}
    assert listed[other_env["id"]]["revoked_at"] is None
    assert listed[more_perms["id"]]["revoked_at"] is None
    assert listed[narrower["id"]]["revoked_at"] is not None


def test_expiring_key_cannot_revoke_a_key_that_outlives_it(
    server: LiveServer, api: httpx.Client
) -> None:
    lasting = _key(api, permissions=["keys:write"])
    hour = _key(api, permissions=["keys:write"], expires_at=_in_hours(1))
    with server.client(key=hour["key"]) as client:
        refused = client.delete(f"/v1/keys/{lasting['id']}")
        assert "expire" in assert_envelope(refused, 403, "permission_error")


def test_limited_key_lists_only_keys_within_its_limit(
    server: LiveServer, api: httpx.Client
) -> None:
    other_env = _key(api, permissions=["keys:read"], environment_ids=[ENV_B])
    same_env = _key(api, permissions=["keys:read"], environment_ids=[ENV_A])
    limited = _key(api, permissions=["keys:read"], environment_ids=[ENV_A])
    with server.client(key=limited["key"]) as client:
        response = client.get("/v1/keys")
    assert response.status_code == 200, response.text
    ids = {k["id"] for k in response.json()["data"]}
    assert {same_env["id"], limited["id"]} <= ids
    assert other_env["id"] not in ids
    assert ENV_B not in response.text
    assert all(k["environment_ids"] is not None for k in response.json()["data"])


def test_expiry_without_a_time_zone_is_a_400(api: httpx.Client) -> None:
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    response = api.post(
        "/v1/keys", json={"name": "x", "permissions": [], "expires_at": naive.isoformat()}
    )
    assert response.status_code in (400, 422), response.text
    assert "error" in response.json()
