"""The Docker Engine connection that `DockerProvider` and its optional abilities share:
the SDK client (short calls, on the provider's thread pool) and an async view of the
same endpoint for streams: an httpx client for streamed bodies (logs, archives) and a
raw connection for attached exec sessions, whose stdin needs a half-close that no
HTTP client offers. Streams never hold a thread."""

import asyncio
import contextlib
import json
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import docker
import httpx

from sandbay.domain.errors import RuntimeFailure
from sandbay.runtime.docker.errors import engine_error, engine_unreachable

T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]
_MAX_HEAD = 64 * 1024
#: Connecting to the engine takes milliseconds when it is there; past this it is not.
CONNECT_SECONDS = 10.0
_FRAME = struct.Struct(">BxxxL")


def _ssl_context(api: Any) -> ssl.SSLContext:
    verify = getattr(api, "verify", True)
    ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    cert = getattr(api, "cert", None)
    if isinstance(cert, tuple):
        ctx.load_cert_chain(cert[0], cert[1])
    elif isinstance(cert, str):
        ctx.load_cert_chain(cert)
    return ctx


def _message(raw: bytes) -> str:
    """The engine's `{"message": …}`, also when it arrives chunk-encoded."""
    start, end = raw.find(b"{"), raw.rfind(b"}")
    try:
        return str(json.loads(raw[start : end + 1]).get("message", ""))
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:500]


class Engine:
    """One engine endpoint, seen both blocking (SDK) and async (streams)."""

    def __init__(self, client: docker.DockerClient, run: Runner) -> None:
        self.client = client
        self.api = client.api
        self.run = run
        self.version = str(self.api.api_version)
        base = str(self.api.base_url)
        self._unix: str | None = None
        self._host: tuple[str, int] | None = None
        self._ssl: ssl.SSLContext | None = None
        if base.startswith("http+docker://") and hasattr(self.api, "_custom_adapter"):
            self._unix = getattr(self.api._custom_adapter, "socket_path", None)
        elif base.startswith(("http://", "https://")):
            parts = urlsplit(base)
            tls = parts.scheme == "https"
            self._host = (parts.hostname or "localhost", parts.port or (2376 if tls else 2375))
            self._ssl = _ssl_context(self.api) if tls else None
        if self._unix is None and self._host is None:
            raise RuntimeFailure(f"streams need a unix:// or tcp:// Docker endpoint, not {base}")
        if self._unix:
            transport = httpx.AsyncHTTPTransport(uds=self._unix)
            root = "http://docker"
        else:
            assert self._host is not None
            transport = httpx.AsyncHTTPTransport(verify=self._ssl or True)
            root = f"{'https' if self._ssl else 'http'}://{self._host[0]}:{self._host[1]}"
        # identity: the engine would otherwise gzip archives, costing CPU on both ends.
        self.http = httpx.AsyncClient(
            transport=transport,
            base_url=f"{root}/v{self.version}",
            # Streams (follow, long commands) may be silent for any time; connecting may not.
            timeout=httpx.Timeout(None, connect=CONNECT_SECONDS),
            headers={"Accept-Encoding": "identity"},
        )

    @property
    def unix_socket(self) -> str | None:
        """The engine's unix socket path, when it is reached through one."""
        return self._unix

    async def open_stream(
        self, method: str, path: str, params: dict[str, str | int | float]
    ) -> httpx.Response:
        """Send a request whose answer body is read as it arrives; an engine error is
        raised (and the response closed) before the caller sees any of it."""
        request = self.http.build_request(method, path, params=params)
        response = await self.http.send(request, stream=True)
        try:
            await self.check(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def check(self, response: httpx.Response) -> None:
        """Raise our error for an engine error answer (reads its small body)."""
        if response.status_code < 400:
            return
        raw = await response.aread()
        raise engine_error(response.status_code, _message(raw), answer=True)

    async def _open(
        self, timeout: float = CONNECT_SECONDS
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(timeout):
                if self._unix:
                    return await asyncio.open_unix_connection(self._unix, limit=_MAX_HEAD)
                assert self._host is not None
                host, port = self._host
                return await asyncio.open_connection(host, port, ssl=self._ssl, limit=_MAX_HEAD)
        except (OSError, TimeoutError) as exc:
            raise engine_unreachable(str(exc) or "connecting timed out") from exc

    async def ping(self, timeout: float) -> bool:
        """Whether the engine answers `/_ping` within `timeout` (connecting included):
        a socket that accepts but does not answer (an engine still restoring its
        containers) is not there yet."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._open(timeout)
                try:
                    writer.write(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError, RuntimeFailure):
            return False
        return line.split(b" ")[1:2] == [b"200"]

    async def hijack(
        self, path: str, body: dict[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST `path` asking for a connection upgrade; returns the raw duplex stream
        (bytes after the response head are the attached stream, nothing is lost)."""
        reader, writer = await self._open()
        payload = json.dumps(body).encode()
        head = (
            f"POST /v{self.version}{path} HTTP/1.1\r\nHost: docker\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        try:
            writer.write(head.encode() + payload)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise RuntimeFailure(f"docker: attach failed: {exc}") from exc
        status = int(raw.split(b" ", 2)[1])
        if status not in (101, 200):
            rest = b""
            with contextlib.suppress(TimeoutError, OSError):
                rest = await asyncio.wait_for(reader.read(_MAX_HEAD), 5)
            writer.close()
            raise engine_error(status, _message(rest), answer=True)
        return reader, writer

    async def aclose(self) -> None:
        await self.http.aclose()


class ByteReader:
    """Exact-size reads over an async iterator of byte chunks (an HTTP body)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            self._buffer += await anext(self._chunks)
        except StopAsyncIteration:
            self._eof = True
            return False
        return True

    async def read_some(self, limit: int) -> bytes:
        """Up to `limit` bytes (at least one unless the stream has ended)."""
        while not self._buffer and await self._fill():
            pass
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    async def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise RuntimeFailure("docker: the stream ended early")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def at_end(self) -> bool:
        while not self._buffer:
            if not await self._fill():
                return True
        return False


async def frames(reader: ByteReader) -> AsyncIterator[tuple[int, bytes]]:
    """The engine's multiplexed stream: (1 stdout | 2 stderr, payload) frames."""
    while not await reader.at_end():
        kind, size = _FRAME.unpack(await reader.read_exactly(8))
        yield kind, (await reader.read_exactly(size) if size else b"")
