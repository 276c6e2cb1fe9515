"""Model providers: credentials are write-only (a hint at most), encrypted at rest
with the server's key, scoped to their organization and to keys allowed to see them."""

import sqlite3

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.support.agents import SecretWatch, new_secret, put_provider
from tests.support.factories import assert_envelope
from tests.support.server import ADMIN_KEY, LiveServer


def _stored_ciphertext(server: LiveServer, name: str) -> str:
    query = "SELECT secret_ciphertext FROM model_providers WHERE name = %s"
    if server.database_url:
        with psycopg.connect(server.database_url) as conn:
            row = conn.execute(query, (name,)).fetchone()
    else:
        with sqlite3.connect(server.data_dir / "sandbay.db") as conn:
            row = conn.execute(query.replace("%s", "?"), (name,)).fetchone()
    assert row is not None
    return str(row[0])


def test_the_credential_is_write_only_and_encrypted_at_rest(
    server: LiveServer, api: httpx.Client
) -> None:
    secret = new_secret("sk-ant")
    watch = SecretWatch(secret)
    created = put_provider(
        api,
        "mp-rest",
        kind="anthropic",
        base_url="https://llm.example.test",
        secret=secret,
        models=["claude-sonnet-4-5", "claude-haiku-4-5"],
    )
    watch.seen(str(created))
    assert created["api_key_hint"] == f"…{secret[-4:]}" and "api_key" not in created
    assert created["default_model"] == "claude-sonnet-4-5"
    for response in (
        api.get("/v1/model-providers/mp-rest"),
        api.get("/v1/model-providers"),
        api.get("/v1/events", params={"limit": 1000}),
    ):
        assert response.status_code == 200
        watch.response(response)
    # At rest: Fernet ciphertext under the key the server generated in its data dir.
    stored = _stored_ciphertext(server, "mp-rest")
    assert secret not in stored
    key = (server.data_dir / "secrets.key").read_bytes()
    assert Fernet(key).decrypt(stored.encode()).decode() == secret
    # A change without a new key keeps the stored one.
    changed = api.put(
        "/v1/model-providers/mp-rest",
        json={"kind": "anthropic", "base_url": "https://other.example.test", "models": []},
    )
    assert changed.status_code == 200 and changed.json()["api_key_hint"] == f"…{secret[-4:]}"
    assert _stored_ciphertext(server, "mp-rest") == stored
    watch.seen(server.log_path.read_text())
    assert api.delete("/v1/model-providers/mp-rest").status_code == 204
    assert_envelope(api.get("/v1/model-providers/mp-rest"), 404, "not_found_error")
    assert_envelope(api.delete("/v1/model-providers/mp-rest"), 404, "not_found_error")


def test_invalid_providers_are_refused(api: httpx.Client) -> None:
    url = "/v1/model-providers"
    for name, body in (
        ("no-key", {"kind": "anthropic"}),
        ("no-url", {"kind": "openai-compatible", "api_key": "k" * 20}),
        ("ftp-url", {"kind": "openai", "base_url": "ftp://x", "api_key": "k" * 20}),
        ("bad-kind", {"kind": "gemini", "api_key": "k" * 20}),
        ("Bad_Name", {"kind": "openai", "api_key": "k" * 20}),
        ("extra", {"kind": "openai", "api_key": "k" * 20, "secret": "x"}),
    ):
        assert_envelope(api.put(f"{url}/{name}", json=body), 400, "invalid_request_error")


def test_providers_belong_to_their_organization_and_need_the_permission(
    server: LiveServer, api: httpx.Client
) -> None:
    put_provider(
        api,
        "mp-scope",
        kind="openai",
        base_url="https://api.example.test/v1",
        secret=new_secret(),
        models=["gpt-test"],
    )
    with server.client(key=ADMIN_KEY) as admin:
        org = admin.post("/v1/orgs", json={"name": f"mp-other-{new_secret()[-6:]}"}).json()
    with server.client(key=org["api_key"]["key"]) as other:
        assert_envelope(other.get("/v1/model-providers/mp-scope"), 404, "not_found_error")
        assert "mp-scope" not in [
            p["name"] for p in other.get("/v1/model-providers").json()["data"]
        ]
    reader = api.post(
        "/v1/keys", json={"name": "reader", "permissions": ["environments:read"]}
    ).json()["key"]
    with server.client(key=reader) as scoped:
        assert_envelope(scoped.get("/v1/model-providers"), 403, "permission_error")
        put = scoped.put("/v1/model-providers/x", json={"kind": "openai", "api_key": "k" * 20})
        assert_envelope(put, 403, "permission_error")
    api.delete("/v1/model-providers/mp-scope")
