"""Daytona's SDK, unchanged, reaches a web app inside a sandbox on real Docker through
sandbay's preview proxy (a preview link fetched with Daytona's token header, a signed
URL fetched with no header at all, refused once it expires or is expired) and logs in
through sandbay's SSH gateway with the real OpenSSH client, the SDK's token as the
user name (refused once revoked)."""

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    Sandbox,
)

from tests.support.factories import delete
from tests.support.inside_app import start_app
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = pytest.mark.docker
PORT = 8000
HEADER = "X-Daytona-Preview-Token"


@pytest.fixture(scope="module")
def web(server: LiveServer) -> Iterator[Sandbox]:
    """A private sandbox with the test web app on port 8000."""
    daytona = Daytona(DaytonaConfig(api_key=server.key, api_url=server.url))
    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(name=f"web-{uuid.uuid4().hex[:8]}", auto_stop_interval=0),
        timeout=120,
    )
    with server.client() as api:
        start_app(api, sandbox.id, PORT)
        yield sandbox
        delete(api, sandbox.id)


@pytest.fixture
def anon() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def test_preview_link_opens_with_daytonas_token_header(
    web: Sandbox, anon: httpx.Client, server: LiveServer
) -> None:
    link = web.get_preview_link(PORT)
    assert link.sandbox_id == web.id and link.token
    assert link.url == f"{server.url}/preview/{web.id}/{PORT}"

    opened = anon.get(f"{link.url}/hello", headers={HEADER: link.token})
    assert opened.status_code == 200 and opened.text == "hello from inside\n"
    # The token is the proxy's to check: the app never sees it.
    seen = anon.get(f"{link.url}/headers", headers={HEADER: link.token}).json()
    assert HEADER.lower() not in {k.lower() for k in seen}

    assert anon.get(f"{link.url}/hello").status_code == 401
    assert anon.get(f"{link.url}/hello", headers={HEADER: "nope"}).status_code == 403
    other = web.get_preview_link(PORT + 1).token  # a token opens its own port only
    assert anon.get(f"{link.url}/hello", headers={HEADER: other}).status_code == 403

    web.set_public(True)
    try:
        eventually(lambda: anon.get(f"{link.url}/hello").status_code == 200, what="public")
    finally:
        web.set_public(False)


def test_signed_url_opens_without_headers_until_expired(
    web: Sandbox, anon: httpx.Client, server: LiveServer
) -> None:
    signed = web.create_signed_preview_url(PORT, expires_in_seconds=600)
    assert signed.port == PORT and signed.sandbox_id == web.id
    assert signed.url == f"{server.url}/preview/{signed.token}/{PORT}"
    opened = anon.get(f"{signed.url}/hello")
    assert opened.status_code == 200 and opened.text == "hello from inside\n"
    # Not interchangeable: a signed token is no header token, nor opens another port.
    refused = anon.get(
        f"{server.url}/preview/{web.id}/{PORT}/hello", headers={HEADER: signed.token}
    )
    assert refused.status_code == 403
    assert anon.get(f"{server.url}/preview/{signed.token}/{PORT + 1}/hello").status_code == 403

    web.expire_signed_preview_url(PORT, signed.token)
    assert anon.get(f"{signed.url}/hello").status_code == 403

    short = web.create_signed_preview_url(PORT, expires_in_seconds=1)
    eventually(lambda: anon.get(f"{short.url}/hello").status_code == 403, what="the URL expired")
    with pytest.raises(DaytonaError, match="between 1 second and 24 hours"):
        web.create_signed_preview_url(PORT, expires_in_seconds=2 * 24 * 3600)


def test_signed_url_in_the_host_form_opens_by_host_name(
    web: Sandbox, anon: httpx.Client, server: LiveServer
) -> None:
    """`{port}-{token}.{preview domain}` (Daytona's form): routed by the Host header."""
    signed = web.create_signed_preview_url(PORT, expires_in_seconds=60)
    host = f"{PORT}-{signed.token}.localhost:{server.port}"
    opened = anon.get(f"{server.url}/hello", headers={"Host": host})
    assert opened.status_code == 200 and opened.text == "hello from inside\n"


def _ssh(command: str, *, user: str, port: int) -> subprocess.CompletedProcess[str]:
    argv = [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=20", "-p", str(port), f"{user}@127.0.0.1", command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_ssh_logs_in_with_the_token_as_user_name_until_revoked(
    web: Sandbox, server: LiveServer
) -> None:
    access = web.create_ssh_access(expires_in_minutes=5)
    assert access.sandbox_id == web.id
    assert access.ssh_command == f"ssh -p {server.ssh_port} {access.token}@127.0.0.1"
    assert web.validate_ssh_access(access.token).valid is True
    assert web.validate_ssh_access(access.token).sandbox_id == web.id

    logged_in = _ssh("echo hello-$((6*7))", user=access.token, port=server.ssh_port)
    assert logged_in.returncode == 0, logged_in.stderr
    assert logged_in.stdout == "hello-42\n"

    web.revoke_ssh_access(access.token)
    assert web.validate_ssh_access(access.token).valid is False
    refused = _ssh("echo no", user=access.token, port=server.ssh_port)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr

    # A new token ends the earlier ones; a wrong one validates as nothing.
    first = web.create_ssh_access(expires_in_minutes=5)
    second = web.create_ssh_access(expires_in_minutes=5)
    assert web.validate_ssh_access(first.token).valid is False
    assert web.validate_ssh_access(second.token).valid is True
    assert web.validate_ssh_access("x" * 32).valid is False
    web.revoke_ssh_access(second.token)


def test_async_sdk_gets_a_preview_and_ssh_access(
    web: Sandbox, async_config: Callable[[], DaytonaConfig], server: LiveServer
) -> None:
    async def body() -> tuple[str, str, str]:
        async with AsyncDaytona(async_config()) as daytona:
            sandbox = await daytona.get(web.id)
            link = await sandbox.get_preview_link(PORT)
            async with httpx.AsyncClient() as client:
                page = await client.get(f"{link.url}/hello", headers={HEADER: link.token})
            access = await sandbox.create_ssh_access(expires_in_minutes=5)
            return page.text, access.token, access.ssh_command

    text, token, command = asyncio.run(body())
    assert text == "hello from inside\n"
    assert command.endswith(f"{token}@127.0.0.1")
    assert _ssh("echo async", user=token, port=server.ssh_port).stdout == "async\n"
