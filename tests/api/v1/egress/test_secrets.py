"""Secrets of an organization: the value is write-only (in no answer, event or log),
encrypted at rest; each keeps one random placeholder; names are unique per
organization and bad input is a 400 envelope."""

import re
import sqlite3

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.support.agents import SecretWatch, new_secret
from tests.support.factories import assert_envelope
from tests.support.server import LiveServer

PLACEHOLDER = re.compile(r"^sandbay_secret_[0-9a-f]{32}$")


def stored_ciphertext(server: LiveServer, secret_id: str) -> str:
    query = "SELECT ciphertext FROM org_secrets WHERE id = %s"
    if server.database_url:
        with psycopg.connect(server.database_url) as conn:
            row = conn.execute(query, (secret_id,)).fetchone()
    else:
        with sqlite3.connect(server.data_dir / "sandbay.db") as conn:
            row = conn.execute(query.replace("%s", "?"), (secret_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_secret_is_created_read_changed_and_deleted_without_its_value(
    server: LiveServer, api: httpx.Client
) -> None:
    value, changed_value = new_secret("sk-live"), new_secret("sk-next")
    watch = SecretWatch(value, changed_value)
    made = api.post(
        "/v1/secrets",
        json={"name": "stripe_key", "value": value, "hosts": ["API.Stripe.com", "*.stripe.com"]},
    )
    assert made.status_code == 201, made.text
    watch.response(made)
    secret = made.json()
    assert set(secret) == {
        "id", "name", "description", "placeholder", "hosts", "created_at", "updated_at"
    }  # fmt: skip
    assert secret["id"].startswith("sec_") and PLACEHOLDER.match(secret["placeholder"])
    assert secret["hosts"] == ["api.stripe.com", "*.stripe.com"]
    assert secret["description"] is None
    stored = stored_ciphertext(server, secret["id"])
    key = (server.data_dir / "secrets.key").read_bytes()
    assert Fernet(key).decrypt(stored.encode()).decode() == value

    by_name, by_id = api.get("/v1/secrets/stripe_key"), api.get(f"/v1/secrets/{secret['id']}")
    assert by_name.json() == by_id.json() == secret
    listed = api.get("/v1/secrets")
    assert [s["name"] for s in listed.json()["data"]].count("stripe_key") == 1

    patched = api.patch(
        "/v1/secrets/stripe_key",
        json={"value": changed_value, "description": "payments", "hosts": ["api.stripe.com"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["placeholder"] == secret["placeholder"]
    assert patched.json()["hosts"] == ["api.stripe.com"]
    assert patched.json()["description"] == "payments"
    assert Fernet(key).decrypt(stored_ciphertext(server, secret["id"]).encode()).decode() == (
        changed_value
    )
    cleared = api.patch("/v1/secrets/stripe_key", json={"description": None})
    assert cleared.json()["description"] is None and cleared.json()["hosts"] == ["api.stripe.com"]

    for response in (by_name, by_id, listed, patched, cleared, api.get("/v1/events")):
        watch.response(response)
    assert api.delete(f"/v1/secrets/{secret['id']}").status_code == 204
    assert_envelope(api.get("/v1/secrets/stripe_key"), 404, "not_found_error")
    assert_envelope(api.delete("/v1/secrets/stripe_key"), 404, "not_found_error")
    watch.seen(server.log_path.read_text())


def test_bad_secrets_are_refused_with_an_envelope(api: httpx.Client) -> None:
    good = {"name": "dup_secret", "value": "v"}
    assert api.post("/v1/secrets", json=good).status_code == 201
    assert_envelope(api.post("/v1/secrets", json=good), 409, "conflict_error")
    for body in (
        {"name": "1starts-with-digit", "value": "v"},
        {"name": "has space", "value": "v"},
        {"name": "sec_" + "0" * 32, "value": "v"},
        {"name": "empty_value", "value": ""},
        {"name": "too_big", "value": "x" * (64 * 1024 + 1)},
        {"name": "bad_host", "value": "v", "hosts": ["https://example.com/"]},
        {"name": "bad_wildcard", "value": "v", "hosts": ["*.com"]},
        {"name": "no_value"},
        {"name": "extra", "value": "v", "secret": "x"},
    ):
        assert_envelope(api.post("/v1/secrets", json=body), 400, "invalid_request_error")
    assert_envelope(
        api.patch("/v1/secrets/dup_secret", json={"hosts": ["a b"]}), 400, "invalid_request_error"
    )
    assert_envelope(
        api.patch("/v1/secrets/dup_secret", json={"value": ""}), 400, "invalid_request_error"
    )
    assert_envelope(api.patch("/v1/secrets/nope", json={}), 404, "not_found_error")
    assert api.delete("/v1/secrets/dup_secret").status_code == 204
