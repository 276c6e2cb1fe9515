"""Daytona's SDK, unchanged, signs file URLs with the sandbox's key on real Docker:
a plain HTTP client with no header at all uploads and downloads through them, and is
refused (401) once the URL is tampered with, has expired, or its key was rotated."""

import asyncio
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from daytona import AsyncDaytona, CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig, Sandbox

from tests.support.factories import delete
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = pytest.mark.docker
DATA = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def sandbox(server: LiveServer) -> Iterator[Sandbox]:
    daytona = Daytona(DaytonaConfig(api_key=server.key, api_url=server.url))
    box = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    try:
        yield box
    finally:
        with server.client() as api:
            delete(api, box.id)  # waits until its container is gone


@pytest.fixture
def anon() -> Iterator[httpx.Client]:
    """A client that sends no API key and no other header of its own."""
    with httpx.Client(timeout=30) as client:
        yield client


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_upload_and_download_through_signed_urls_without_headers(
    sandbox: Sandbox, anon: httpx.Client, server: LiveServer
) -> None:
    upload = sandbox.upload_url("/workspace/signed/data.bin")
    assert upload.startswith(f"{server.url}/toolbox/{sandbox.id}/files/upload-v2?")
    posted = anon.post(upload, files={"file": ("data.bin", DATA)})
    assert posted.status_code == 200, posted.text
    assert posted.json() == {
        "name": "data.bin",
        "path": "/workspace/signed/data.bin",
        "type": "file",
    }
    assert sandbox.fs.download_file("/workspace/signed/data.bin") == DATA

    sandbox.fs.upload_file(b"report\n", "/workspace/report.txt")
    download = sandbox.download_url("/workspace/report.txt", ttl_seconds=600)
    fetched = anon.get(download)
    assert fetched.status_code == 200 and fetched.content == b"report\n"
    # A raw body (no form) is an upload too.
    raw = anon.post(sandbox.upload_url("raw.txt"), content=b"raw bytes")
    assert raw.status_code == 200 and raw.json()["path"] == "/workspace/raw.txt"
    assert sandbox.fs.download_file("/workspace/raw.txt") == b"raw bytes"
    # Without a signature the same toolbox path wants an API key.
    unsigned = anon.get(f"{server.url}/toolbox/{sandbox.id}/files/download?path=report.txt")
    assert unsigned.status_code == 401


def test_tampered_signed_urls_are_refused(sandbox: Sandbox, anon: httpx.Client) -> None:
    sandbox.fs.upload_file(b"secret\n", "/workspace/secret.txt")
    url = sandbox.download_url("/workspace/report-a.txt", ttl_seconds=600)
    for tampered in (
        _with_query(url, path="/workspace/secret.txt"),  # another file
        _with_query(url, expires=str(int(parse_qs(urlsplit(url).query)["expires"][0]) + 60)),
        _with_query(url, signature="v1_" + "A" * 43),
        url.replace(f"/{sandbox.id}/", "/env_00000000000000000000000000000000/"),
    ):
        refused = anon.get(tampered)
        assert refused.status_code == 401, tampered
        assert refused.json()["source"] == "DAYTONA_DAEMON"
    # A download URL does not upload: the method is signed too.
    upload_path = url.replace("/files/download?", "/files/upload-v2?")
    assert anon.post(upload_path, content=b"x").status_code == 401


def test_signed_url_is_refused_after_it_expires(sandbox: Sandbox, anon: httpx.Client) -> None:
    sandbox.fs.upload_file(b"soon gone\n", "/workspace/short.txt")
    url = sandbox.download_url("/workspace/short.txt", ttl_seconds=1)
    eventually(lambda: anon.get(url).status_code == 401, what="the URL expired")
    assert anon.get(sandbox.download_url("/workspace/short.txt")).content == b"soon gone\n"


def test_rotating_the_key_ends_every_url_signed_before(
    sandbox: Sandbox, anon: httpx.Client
) -> None:
    sandbox.fs.upload_file(b"kept\n", "/workspace/kept.txt")
    before = sandbox.download_url("/workspace/kept.txt")
    upload_before = sandbox.upload_url("/workspace/late.txt")
    assert anon.get(before).status_code == 200

    sandbox.rotate_signing_key()
    assert anon.get(before).status_code == 401
    assert anon.post(upload_before, files={"file": ("late.txt", b"late")}).status_code == 401
    after = sandbox.download_url("/workspace/kept.txt")
    assert anon.get(after).content == b"kept\n"


def test_the_signing_key_needs_an_api_key(
    sandbox: Sandbox, anon: httpx.Client, server: LiveServer
) -> None:
    assert anon.get(f"{server.url}/sandbox/{sandbox.id}/signing-key").status_code == 401
    with server.client() as api:
        key = api.get(f"{server.url}/sandbox/{sandbox.id}/signing-key")
    assert key.status_code == 200 and isinstance(key.json(), str) and len(key.json()) >= 32


def test_async_sdk_signs_urls_too(
    sandbox: Sandbox, async_config: Callable[[], DaytonaConfig]
) -> None:
    async def body() -> tuple[int, bytes, int]:
        async with AsyncDaytona(async_config()) as daytona:
            box = await daytona.get(sandbox.id)
            async with httpx.AsyncClient(timeout=30) as client:
                up = await client.post(
                    await box.upload_url("async.txt"), files={"file": ("a", b"async\n")}
                )
                down = await client.get(await box.download_url("async.txt"))
                url = await box.download_url("async.txt")
                await box.rotate_signing_key()
                refused = await client.get(url)
            return up.status_code, down.content, refused.status_code

    assert asyncio.run(body()) == (200, b"async\n", 401)
