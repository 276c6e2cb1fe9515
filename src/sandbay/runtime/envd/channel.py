"""The channel from the control plane to an environment's `envd` (docs/envd.md):
HTTP/1.1 over one TCP connection per call to the agent's address on the engine's
network, with the environment's bearer token. Plain calls are JSON; streams (a
process, a port, a file session) switch the connection with `Upgrade` and then own
it. `h11` does the HTTP; a connection is never shared, so no pool is needed and a
stream cannot block another call."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import h11

from sandbay.domain.errors import (
    Conflict,
    ContainerNotFound,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    PortUnreachable,
    RuntimeFailure,
    SandbayError,
)

PORT = 2280
_READ = 256 * 1024
_CONNECT_TIMEOUT_S = 3.0
_ERRORS: dict[str, type[SandbayError]] = {
    "invalid": InvalidRequest,
    "git_failed": InvalidRequest,
    "not_found": NotFound,
    "permission_denied": PermissionDenied,
    "conflict": Conflict,
    "unreachable": PortUnreachable,
}


@dataclass(frozen=True, slots=True)
class Address:
    """Where one environment's agent listens, and the token it accepts."""

    host: str
    port: int
    token: str

    @classmethod
    def at(cls, endpoint: str, token: str) -> "Address":
        """The agent at a published `host:port` (a Swarm node's, docs/scaling.md)."""
        host, _, port = endpoint.rpartition(":")
        return cls(host=host, port=int(port), token=token)


class Locator(Protocol):
    async def locate(self, environment_id: str, *, fresh: bool = False) -> Address:
        """The agent's address (cached unless `fresh`); `Conflict` when the
        environment's workload is not running."""
        ...

    def forget(self, environment_id: str) -> None: ...


def agent_error(status: int, body: bytes) -> SandbayError:
    """The domain error for one of envd's JSON error answers."""
    try:
        payload = json.loads(body)
        message, code = str(payload["error"]), str(payload.get("code", ""))
    except (ValueError, KeyError, TypeError):
        message, code = body.decode(errors="replace").strip()[:500] or f"HTTP {status}", ""
    kind = _ERRORS.get(code)
    if kind is not None:
        return kind(message)
    return RuntimeFailure(f"the environment's agent failed: {message}")


class Stream:
    """A switched connection: bytes already read come first, then the socket's."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> None:
        self.reader, self.writer = reader, writer
        self._head = bytearray(head)

    async def read(self, limit: int) -> bytes:
        if self._head:
            data = bytes(self._head[:limit])
            del self._head[:limit]
            return data
        return await self.reader.read(limit)

    async def readexactly(self, size: int) -> bytes:
        if len(self._head) >= size:
            data = bytes(self._head[:size])
            del self._head[:size]
            return data
        head, self._head = bytes(self._head), bytearray()
        return head + await self.reader.readexactly(size - len(head))

    def at_eof(self) -> bool:
        return not self._head and self.reader.at_eof()

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def write_eof(self) -> None:
        if not self.writer.is_closing() and self.writer.can_write_eof():
            with contextlib.suppress(OSError):
                self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()


class Response:
    """A plain answer; its body is read (or streamed) from the connection."""

    def __init__(self, status: int, headers: dict[str, str], conn: "_Conn") -> None:
        self.status = status
        self.headers = headers
        self._conn = conn

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                event = await self._conn.next_event()
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return
        finally:
            self._conn.close()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.body()])

    async def json(self) -> Any:
        return json.loads(await self.read() or b"null")

    def close(self) -> None:
        self._conn.close()


class _Conn:
    """One HTTP/1.1 exchange on a fresh connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, *events: Any) -> None:
        self.writer.write(b"".join(self.h11.send(e) or b"" for e in events))
        await self.writer.drain()

    async def next_event(self) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise RuntimeFailure(f"the environment's agent answered badly: {exc}") from exc
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(_READ)
            self.h11.receive_data(data)
            if not data and self.h11.their_state is h11.SEND_BODY:
                raise RuntimeFailure("the environment's agent closed the connection mid-answer")

    def close(self) -> None:
        self.writer.close()


def _target(path: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return path
    clean = {k: ("1" if v is True else "0" if v is False else v) for k, v in params.items()}
    return f"{path}?{urlencode({k: v for k, v in clean.items() if v is not None})}"


def _identity(address: Address) -> list[tuple[str, str]]:
    """The headers every call carries: the agent's token opens it."""
    return [("Host", "envd"), ("Authorization", f"Bearer {address.token}")]


def _json(value: Any) -> tuple[bytes | None, list[tuple[str, str]]]:
    """A JSON request body and its header (nothing for None)."""
    if value is None:
        return None, []
    return json.dumps(value).encode(), [("Content-Type", "application/json")]


class Channel:
    """Calls to the agent of any environment this control plane can locate."""

    def __init__(self, locator: Locator) -> None:
        self.locator = locator

    async def _connect(self, address: Address) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address.host, address.port, limit=_READ),
                _CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        return _Conn(reader, writer)

    async def _exchange(
        self,
        environment_id: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        chunks: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> tuple[_Conn, Any]:
        """Send the request (once more to a freshly located agent if the cached address
        is stale: nobody listens there, or another environment's agent does) and return
        the first answer event."""
        for attempt in range(2):
            address = await self.locator.locate(environment_id, fresh=attempt > 0)
            try:
                conn = await self._connect(address)
            except ConnectionError as exc:
                if attempt:
                    raise RuntimeFailure(
                        f"cannot reach the environment's agent at {address.host}: {exc}"
                    ) from exc
                continue
            all_headers = [*_identity(address), *headers]
            try:
                if chunks is not None:
                    # Expect: 100-continue: a refusal (a stale address) arrives before
                    # any of the body is consumed, so the call can still be retried.
                    all_headers += [("Content-Length", str(length)), ("Expect", "100-continue")]
                    await conn.send(h11.Request(method=method, target=target, headers=all_headers))
                    event = await conn.next_event()
                    if isinstance(event, h11.InformationalResponse) and event.status_code == 100:
                        async for chunk in chunks:
                            await conn.send(h11.Data(data=chunk))
                        await conn.send(h11.EndOfMessage())
                        event = await conn.next_event()
                else:
                    if body is not None:
                        all_headers.append(("Content-Length", str(len(body))))
                    events: list[Any] = [
                        h11.Request(method=method, target=target, headers=all_headers)
                    ]
                    if body:
                        events.append(h11.Data(data=body))
                    events.append(h11.EndOfMessage())
                    await conn.send(*events)
                    event = await conn.next_event()
            except (OSError, h11.LocalProtocolError) as exc:
                conn.close()
                if attempt:
                    raise RuntimeFailure(f"the environment's agent went away: {exc}") from exc
                continue
            except BaseException:
                conn.close()
                raise
            if isinstance(event, h11.Response) and event.status_code == 401 and not attempt:
                conn.close()
                continue
            return conn, event
        raise RuntimeFailure("the environment's agent refused the platform's token")

    async def request(
        self,
        environment_id: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        chunks: AsyncIterator[bytes] | None = None,
        length: int | None = None,
    ) -> Response:
        """A plain call; raises the mapped error for an error status."""
        body, headers = _json(json_body)
        conn, event = await self._exchange(
            environment_id, method, _target(path, params), headers, body, chunks, length
        )
        if not isinstance(event, h11.Response):
            conn.close()
            raise RuntimeFailure(f"the environment's agent answered {event!r}")
        response = Response(
            event.status_code,
            {k.decode().lower(): v.decode(errors="replace") for k, v in event.headers},
            conn,
        )
        if event.status_code >= 400:
            raise agent_error(event.status_code, await response.read())
        return response

    async def call(
        self,
        environment_id: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Any:
        """A plain JSON call and its decoded answer."""
        response = await self.request(
            environment_id, method, path, params=params, json_body=json_body
        )
        return await response.json()

    async def upgrade(
        self,
        environment_id: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Stream:
        """Switch a connection to a stream; an error answer raises before the switch."""
        body, headers = _json(json_body)
        headers += [("Connection", "Upgrade"), ("Upgrade", "sandbay-stream")]
        conn, event = await self._exchange(
            environment_id, method, _target(path, params), headers, body, None, None
        )
        if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            head, _ = conn.h11.trailing_data
            return Stream(conn.reader, conn.writer, bytes(head))
        if isinstance(event, h11.Response):
            raise agent_error(event.status_code, await Response(event.status_code, {}, conn).read())
        conn.close()
        raise RuntimeFailure(f"the environment's agent answered {event!r}")

    async def ready(self, environment_id: str, *, timeout: float) -> bool:
        """Wait until the agent answers its health check: True, or False when the
        workload stopped meanwhile (the reconciler's next look sees why)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay, tries = 0.002, 0
        address: Address | None = None
        while True:
            if address is None or tries % 10 == 9:  # now and then: did it stop?
                try:
                    address = await self.locator.locate(environment_id, fresh=True)
                except (Conflict, ContainerNotFound):
                    return False
            tries += 1
            if await _healthy(address):
                return True
            if loop.time() > deadline:
                raise RuntimeFailure(f"the environment's agent did not answer within {timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


async def _healthy(address: Address) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.host, address.port), _CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return False
    conn = _Conn(reader, writer)
    try:
        await conn.send(
            h11.Request(
                method="GET",
                target="/v1/health",
                headers=_identity(address),
            ),
            h11.EndOfMessage(),
        )
        event = await conn.next_event()
        return isinstance(event, h11.Response) and event.status_code == 200
    except (OSError, SandbayError):
        return False
    finally:
        conn.close()
