"""The preview proxy over real HTTP and WebSockets to a web app running inside a real
environment: both URL forms, tokens (header, query exchanged for a cookie), public
environments, streaming bodies, refusals, a stopped environment, HTTPS, and a real
browser (Chromium) following a token link."""

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import sync_playwright
from websockets.sync.client import connect

from tests.support.factories import assert_envelope, delete, running_env, stop, wait_state
from tests.support.inside_app import start_app
from tests.support.server import LiveServer

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
PORT = 8000
TOKEN = "X-Sandbay-Preview-Token"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _link(api: httpx.Client, env: str, port: int = PORT) -> dict[str, Any]:
    response = api.get(f"/v1/environments/{env}/preview/{port}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _host(env_id: str, port: int = PORT) -> str:
    return f"{port}-{env_id.removeprefix('env_')}.localhost"


@pytest.fixture(scope="module")
def web_env(server: LiveServer) -> Iterator[dict[str, Any]]:
    """A running environment with the test web app on port 8000."""
    with server.client() as api:
        env = running_env(api, name=_name("web"))
        start_app(api, env["id"], PORT)
        yield env
        delete(api, env["id"])


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(key="") as client:
        yield client


def test_web_app_answers_through_both_preview_forms(
    api: httpx.Client, anon: httpx.Client, web_env: dict[str, Any], server: LiveServer
) -> None:
    env_id = web_env["id"]
    link = _link(api, env_id)
    assert link["public"] is False and link["token"]
    assert link["url"] == f"http://{_host(env_id)}:{server.port}/"
    assert link["path_url"] == f"{server.url}/preview/{env_id}/{PORT}/"
    headers = {TOKEN: link["token"]}

    by_path = anon.get(f"/preview/{env_id}/{PORT}/hello", headers=headers)
    assert by_path.status_code == 200, by_path.text
    assert by_path.text == "hello from inside\n"
    # The path form shares the dashboard's origin: its documents run sandboxed.
    policy = by_path.headers["content-security-policy"]
    assert policy.startswith("sandbox ") and "allow-same-origin" not in policy

    by_host = anon.get("/hello", headers={**headers, "Host": f"{_host(env_id)}:{server.port}"})
    assert by_host.status_code == 200, by_host.text
    assert by_host.text == "hello from inside\n"
    assert "content-security-policy" not in by_host.headers  # its own origin

    seen = anon.get(
        f"/preview/{env_id}/{PORT}/headers?a=1",
        headers={**headers, "Cookie": "sandbay_session=s3cret; app=1"},
    ).json()
    assert TOKEN.lower() not in seen  # our token never reaches the app
    assert seen["cookie"] == "app=1"  # nor the dashboard's session
    assert seen["x-forwarded-prefix"] == f"/preview/{env_id}/{PORT}"
    redirect = anon.get(f"/preview/{env_id}/{PORT}/redirect", headers=headers)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"/preview/{env_id}/{PORT}/hello"


def test_private_preview_is_refused_without_a_valid_token(
    api: httpx.Client, anon: httpx.Client, web_env: dict[str, Any]
) -> None:
    env_id = web_env["id"]
    path = f"/preview/{env_id}/{PORT}/hello"
    assert_envelope(anon.get(path), 401, "authentication_error")
    page = anon.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert page.headers["content-type"].startswith("text/html")
    assert "private" in page.text
    assert_envelope(anon.get(path, headers={TOKEN: "sbp_nope"}), 403, "permission_error")
    other_port = _link(api, env_id, 9000)["token"]  # a token for another port
    assert_envelope(anon.get(path, headers={TOKEN: other_port}), 403, "permission_error")
    unknown = f"/preview/env_{'0' * 32}/{PORT}/"
    # A random id answers as a real one does: nothing tells which ids exist.
    assert_envelope(anon.get(unknown, headers={TOKEN: "x"}), 403, "permission_error")


def test_query_token_is_exchanged_for_a_cookie(
    api: httpx.Client, anon: httpx.Client, web_env: dict[str, Any]
) -> None:
    env_id = web_env["id"]
    token = _link(api, env_id)["token"]
    base = f"/preview/{env_id}/{PORT}"
    first = anon.get(f"{base}/hello", params={"sandbay_preview_token": token, "keep": "1"})
    assert first.status_code == 303
    assert first.headers["location"] == f"{base}/hello?keep=1"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and f"Path={base}/" in cookie
    assert anon.get(first.headers["location"]).text == "hello from inside\n"  # cookie jar
    seen = anon.get(f"{base}/headers").json()
    assert "sandbay_preview" not in seen.get("cookie", "")


def test_request_and_response_bodies_stream_through(
    api: httpx.Client, anon: httpx.Client, web_env: dict[str, Any]
) -> None:
    env_id = web_env["id"]
    headers = {TOKEN: _link(api, env_id)["token"]}
    body = os.urandom(8 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:  # chunked upload: no Content-Length
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    echoed = anon.post(f"/preview/{env_id}/{PORT}/echo", content=chunks(), headers=headers)
    assert echoed.status_code == 200
    assert echoed.content == body


def test_websocket_echo_through_both_forms(
    api: httpx.Client, web_env: dict[str, Any], server: LiveServer
) -> None:
    env_id = web_env["id"]
    headers = {TOKEN: _link(api, env_id)["token"]}
    path_url = f"ws://127.0.0.1:{server.port}/preview/{env_id}/{PORT}/ws"
    with connect(path_url, additional_headers=headers, subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"
        ws.send("hello")
        assert ws.recv(timeout=20) == "hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=20) == b"\x00\x01binary"

    sock = socket.create_connection(("127.0.0.1", server.port))
    host_url = f"ws://{_host(env_id)}:{server.port}/ws"
    with connect(host_url, sock=sock, additional_headers=headers) as ws:
        ws.send("by host")
        assert ws.recv(timeout=20) == "by host"

    with pytest.raises(Exception, match="401"):
        connect(path_url, open_timeout=20)


def test_a_browser_opens_a_private_preview_from_a_token_link(
    api: httpx.Client, web_env: dict[str, Any]
) -> None:
    """Debian's Chromium, driven by Playwright: the token link becomes a cookie, the
    page's own script reaches the app's WebSocket through the proxy, and a browser
    without the cookie is refused."""
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: `make test` installs it (SANDBAY_BROWSER=1 setup)"
    link = _link(api, web_env["id"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{link['url']}page?sandbay_preview_token={link['token']}")
            page.wait_for_function("document.title.startsWith('echo:')", timeout=20_000)
            assert page.title() == "echo:hello-from-browser"
            assert "sandbay_preview_token" not in page.url  # removed by the 303
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script sees it
            again = page.goto(f"{link['url']}hello")
            assert again is not None and again.status == 200
            assert page.inner_text("body").strip() == "hello from inside"

            stranger = browser.new_context().new_page()
            refused = stranger.goto(f"{link['url']}hello")
            assert refused is not None and refused.status == 401
        finally:
            browser.close()


def test_public_environment_needs_no_token(
    api: httpx.Client, anon: httpx.Client, web_env: dict[str, Any]
) -> None:
    env_id = web_env["id"]
    path = f"/preview/{env_id}/{PORT}/hello"
    try:
        assert api.patch(f"/v1/environments/{env_id}", json={"public": True}).json()["public"]
        assert anon.get(path).text == "hello from inside\n"
        assert _link(api, env_id)["token"] is None
    finally:
        api.patch(f"/v1/environments/{env_id}", json={"public": False})
    assert anon.get(path).status_code == 401


def test_preview_counts_as_activity_and_a_stopped_environment_is_refused(
    api: httpx.Client, anon: httpx.Client
) -> None:
    env = running_env(api, name=_name("web-stop"))
    try:
        env_id = env["id"]
        start_app(api, env_id, PORT)
        headers = {TOKEN: _link(api, env_id)["token"]}
        before = api.get(f"/v1/environments/{env_id}").json()["last_activity_at"]
        time.sleep(1.2)  # activity is recorded at most once a second
        assert anon.get(f"/preview/{env_id}/{PORT}/hello", headers=headers).status_code == 200
        after = api.get(f"/v1/environments/{env_id}").json()["last_activity_at"]
        assert after > before

        stop(api, env_id, timeout=1)
        wait_state(api, env_id, "stopped")
        refused = anon.get(f"/preview/{env_id}/{PORT}/hello", headers=headers)
        message = assert_envelope(refused, 409, "conflict_error")
        assert "stopped" in message
        page = anon.get("/", headers={**headers, "Host": _host(env_id), "Accept": "text/html"})
        assert page.status_code == 409 and "stopped" in page.text
    finally:
        delete(api, env["id"])


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbay test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("*.localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_server_serves_https_and_previews_over_it(make_server: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    live = make_server(
        extra_env={"SANDBAY_TLS_CERT": str(cert), "SANDBAY_TLS_KEY": str(key)}
    ).start()
    with httpx.Client(
        base_url=live.url,
        headers={"X-API-KEY": live.key},
        verify=ssl.create_default_context(cafile=str(cert)),
        timeout=120,
    ) as api:
        assert api.get("/healthz").status_code == 200
        env = running_env(api, name=_name("tls"))
        try:
            start_app(api, env["id"], PORT)
            link = _link(api, env["id"])
            assert link["url"].startswith("https://")
            response = api.get(
                "/hello", headers={TOKEN: link["token"], "Host": f"{_host(env['id'])}:{live.port}"}
            )
            assert response.text == "hello from inside\n"
            first = api.get(
                link["path_url"] + "hello", params={"sandbay_preview_token": link["token"]}
            )
            assert "Secure" in first.headers["set-cookie"]
        finally:
            delete(api, env["id"])
