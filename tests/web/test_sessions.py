"""Dashboard sessions at the HTTP level: an API key exchanged for a cookie, which the
API then accepts as that key — a change only with the session's CSRF token, a
WebSocket only from our own origin — until sign-out or the key's revocation."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.factories import delete, running_env
from tests.support.polling import eventually
from tests.support.server import LiveServer

COOKIE = "sandbay_session"


def sign_in(server: LiveServer, key: str) -> tuple[str, str]:
    """The session cookie and CSRF token a browser would get."""
    with httpx.Client(base_url=server.url) as browser:
        answer = browser.post("/login", data={"api_key": key})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/"
        set_cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        cookie = answer.cookies[COOKIE]
        shell = browser.get("/")  # the client keeps the cookie, as a browser does
        assert shell.status_code == 200 and key not in shell.text
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', shell.text)
    assert match
    return cookie, match.group(1)


@pytest.fixture
def session(server: LiveServer) -> Iterator[httpx.Client]:
    cookie, csrf = sign_in(server, server.key)
    with httpx.Client(base_url=server.url, cookies={COOKIE: cookie}) as client:
        client.headers["x-test-csrf"] = csrf  # what the page's scripts send as X-CSRF-Token
        yield client


def test_a_wrong_key_gets_no_session(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        answer = browser.post("/login", data={"api_key": "sbk_org_wrong"})
        assert answer.status_code == 401
        assert "invalid API key" in answer.text
        assert COOKIE not in answer.cookies
        # No other site may frame the dashboard's pages (clickjacking its buttons).
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert browser.get("/").status_code == 303  # to /login


def test_a_sign_in_form_posted_from_another_site_is_refused(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        answer = browser.post(
            "/login", data={"api_key": server.key}, headers={"Origin": "http://evil.test"}
        )
        assert answer.status_code == 403
        assert COOKIE not in answer.cookies


def test_a_session_changes_nothing_without_its_csrf_token(session: httpx.Client) -> None:
    assert session.get("/v1/keys").status_code == 200  # reads need only the cookie
    for headers in ({}, {"X-CSRF-Token": "0" * 64}):
        refused = session.post("/v1/keys", json={"name": "csrf"}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "X-CSRF-Token" in refused.json()["error"]["message"]
    csrf = session.headers["x-test-csrf"]
    created = session.post("/v1/keys", json={"name": "csrf"}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    revoked = session.delete(f"/v1/keys/{created.json()['id']}", headers={"X-CSRF-Token": csrf})
    assert revoked.status_code == 200


def test_sign_out_needs_the_token_and_then_ends_the_session(session: httpx.Client) -> None:
    assert session.post("/logout", data={"csrf": "forged"}).status_code == 303
    assert session.get("/v1/environments").status_code == 200  # a forged sign-out did nothing
    assert session.post("/logout", data={"csrf": session.headers["x-test-csrf"]}).status_code == 303
    assert session.get("/v1/environments").status_code == 401


def audited_for(api: httpx.Client, key_id: str) -> list[dict[str, Any]]:
    """The key's audited calls: the log is oldest first, and the session's server has
    many more than a page of events from other tests, so every page is read."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = api.get("/v1/events", params=params).json()
        found += [
            e for e in page["data"] if e["type"] == "api.request" and e["data"]["key_id"] == key_id
        ]
        if not page["has_more"]:
            return found
        params["after"] = page["next_cursor"]


def test_a_session_acts_as_its_key_until_the_key_is_revoked(
    server: LiveServer, api: httpx.Client
) -> None:
    key = api.post("/v1/keys", json={"name": "dashboard"}).json()
    cookie, csrf = sign_in(server, key["key"])
    with httpx.Client(base_url=server.url, cookies={COOKIE: cookie}) as browser:
        assert browser.get("/v1/environments").status_code == 200
        made = browser.post("/v1/keys", json={"name": "by-session"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        audited = eventually(lambda: audited_for(api, key["id"]), what="the call audited")
        assert audited[0]["actor"] == f"key:{key['id']}"
        assert audited[0]["data"]["route"] == "/v1/keys"
        assert api.delete(f"/v1/keys/{key['id']}").status_code == 200
        assert browser.get("/v1/environments").status_code == 401


def test_a_terminal_takes_the_cookie_only_from_our_own_origin(
    server: LiveServer, api: httpx.Client
) -> None:
    env = running_env(api)
    cookie, _ = sign_in(server, server.key)
    url = f"ws://127.0.0.1:{server.port}/v1/environments/{env['id']}/pty"
    try:
        with pytest.raises(InvalidStatus):
            connect(url, additional_headers={"Cookie": f"{COOKIE}={cookie}"})  # no Origin
        with pytest.raises(InvalidStatus):
            connect(
                url, origin="http://evil.test", additional_headers={"Cookie": f"{COOKIE}={cookie}"}
            )  # type: ignore[arg-type]
        own = f"http://127.0.0.1:{server.port}"
        with connect(url, origin=own, additional_headers={"Cookie": f"{COOKIE}={cookie}"}) as ws:  # type: ignore[arg-type]
            assert '"session"' in str(ws.recv(timeout=30))
    finally:
        delete(api, env["id"])
