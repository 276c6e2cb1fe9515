"""Authentication and authorization: 401, 403, and another org's objects are 404."""

import httpx
import pytest

from tests.support.factories import assert_envelope, create_env, delete, scoped_key, wait_state
from tests.support.server import ADMIN_KEY, LiveServer


def test_missing_key_is_401(server: LiveServer) -> None:
    with server.client(key="") as anon:
        assert_envelope(anon.get("/v1/environments"), 401, "authentication_error")
        assert_envelope(anon.post("/v1/environments", json={}), 401, "authentication_error")


def test_bad_key_is_401_both_as_header_and_bearer(server: LiveServer) -> None:
    with server.client(key="sbk_org_nope") as bad:
        assert_envelope(bad.get("/v1/environments"), 401, "authentication_error")
    with server.client(key="") as anon:
        response = anon.get("/v1/environments", headers={"Authorization": "Bearer sbk_nope"})
        assert_envelope(response, 401, "authentication_error")


def test_bearer_and_x_api_key_both_authenticate(server: LiveServer) -> None:
    with server.client(key="") as anon:
        assert anon.get("/v1/environments", headers={"X-API-KEY": server.key}).status_code == 200
        bearer = {"Authorization": f"Bearer {server.key}"}
        assert anon.get("/v1/environments", headers=bearer).status_code == 200


def _scoped(api: httpx.Client, *permissions: str) -> str:
    response = api.post("/v1/keys", json={"name": "scoped", "permissions": list(permissions)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "scoped" and body["key"].startswith("sbk_")
    assert not body["key"].startswith("sbk_org_")
    return str(body["key"])


def test_scoped_key_without_lifecycle_gets_403_on_stop(
    server: LiveServer, api: httpx.Client
) -> None:
    env = create_env(api, name="auth-scoped")
    reader = _scoped(api, "environments:read")
    with server.client(key=reader) as scoped:
        assert scoped.get(f"/v1/environments/{env['id']}").status_code == 200
        stop = scoped.post(f"/v1/environments/{env['id']}/stop")
        assert "environments:lifecycle" in assert_envelope(stop, 403, "permission_error")
        assert_envelope(scoped.post("/v1/environments", json={}), 403, "permission_error")
        assert_envelope(scoped.delete(f"/v1/environments/{env['id']}"), 403, "permission_error")
        # A scoped key cannot mint keys with more than it has.
        assert_envelope(
            scoped.post("/v1/keys", json={"name": "x", "permissions": ["keys:write"]}),
            403,
            "permission_error",
        )
    operator = _scoped(api, "environments:read", "environments:lifecycle")
    with server.client(key=operator) as scoped:
        assert scoped.post(f"/v1/environments/{env['id']}/stop").status_code == 200
    delete(api, env["id"])


def test_key_restricted_to_one_environment_sees_only_it(
    server: LiveServer, api: httpx.Client
) -> None:
    mine = create_env(api, name="auth-mine")
    other = create_env(api, name="auth-other")
    key = scoped_key(
        api,
        "one-env",
        "environments:read",
        "environments:lifecycle",
        environment_ids=[mine["id"]],
    )
    with server.client(key=key) as scoped:
        assert scoped.get(f"/v1/environments/{mine['id']}").status_code == 200
        assert_envelope(scoped.get(f"/v1/environments/{other['id']}"), 404, "not_found_error")
        listed = [e["id"] for e in scoped.get("/v1/environments").json()["data"]]
        assert listed == [mine["id"]]
    delete(api, mine["id"])
    delete(api, other["id"])


def test_other_orgs_environment_is_404_not_403(server: LiveServer, api: httpx.Client) -> None:
    with server.client(key=ADMIN_KEY) as admin:
        created = admin.post("/v1/orgs", json={"name": "auth-other-org"})
        assert created.status_code == 201, created.text
        other_key = created.json()["api_key"]["key"]
        assert created.json()["api_key"]["key"].startswith("sbk_org_")
        # The operator key manages organizations only.
        assert_envelope(admin.get("/v1/environments"), 403, "permission_error")
    env = create_env(api, name="auth-private")
    with server.client(key=other_key) as stranger:
        for method, path in [
            ("GET", f"/v1/environments/{env['id']}"),
            ("GET", "/v1/environments/auth-private"),
            ("POST", f"/v1/environments/{env['id']}/stop"),
            ("POST", f"/v1/environments/{env['id']}/start"),
            ("DELETE", f"/v1/environments/{env['id']}"),
            ("GET", f"/v1/environments/{env['id']}/events"),
            ("GET", f"/v1/environments/{env['id']}/wait?state=running&timeout=1"),
        ]:
            assert_envelope(stranger.request(method, path), 404, "not_found_error")
        assert stranger.get("/v1/environments").json()["data"] == []
        # The same name is free in another organization.
        theirs = stranger.post("/v1/environments", json={"name": "auth-private"})
        assert theirs.status_code == 201
        wait_state(stranger, theirs.json()["id"], "running")
        delete(stranger, theirs.json()["id"])
    delete(api, env["id"])


def test_only_the_operator_key_creates_organizations(api: httpx.Client) -> None:
    assert_envelope(api.post("/v1/orgs", json={"name": "nope"}), 403, "permission_error")


def test_keys_are_shown_once_listed_without_secret_and_revocable(
    server: LiveServer, api: httpx.Client
) -> None:
    created = api.post("/v1/keys", json={"name": "temp"}).json()
    secret = created["key"]
    assert created["kind"] == "organization" and secret.startswith("sbk_org_")
    listed = api.get("/v1/keys").json()["data"]
    row = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in row and row["prefix"] == secret[:12]
    assert all(secret not in str(k) for k in listed)
    with server.client(key=secret) as temp:
        assert temp.get("/v1/environments").status_code == 200
        revoked = api.delete(f"/v1/keys/{created['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert_envelope(temp.get("/v1/environments"), 401, "authentication_error")
    assert_envelope(api.delete("/v1/keys/key_nope"), 404, "not_found_error")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "permissions": ["environments:everything"]},
        {"name": ""},
        {"name": "x", "environment_ids": ["env_1"]},
        {"name": "x", "expires_at": "2001-01-01T00:00:00Z"},
    ],
)
def test_bad_key_requests_are_400(api: httpx.Client, body: dict[str, object]) -> None:
    assert_envelope(api.post("/v1/keys", json=body), 400, "invalid_request_error")
