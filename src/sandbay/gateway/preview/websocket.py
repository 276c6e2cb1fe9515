"""WebSockets through the preview proxy: the client's socket is accepted once the
app inside the environment has accepted ours (same subprotocol), then messages are
relayed both ways until either side closes (with its close code). Our side of the
upstream connection is a `websockets` client over a socketpair bridged to the
runtime's port relay."""

import asyncio
import contextlib
import logging
import socket
from typing import Any

from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from sandbay.domain.errors import SandbayError
from sandbay.gateway.preview.proxy import (
    PreviewProxy,
    Refusal,
    Route,
    _strip_token_query,
    _upstream_refusal,
    refusal_response,
    upstream_headers,
)
from sandbay.runtime.access import ByteStream

log = logging.getLogger(__name__)
_CHUNK = 65536
#: Headers the websockets client writes itself.
_OWN_HEADERS = frozenset(
    {
        b"host",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"origin",
        b"user-agent",
    }
)


async def _refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Deny the handshake with an HTTP answer if the server can, else a close."""
    if "websocket.http.response" in scope.get("extensions", {}):
        status, headers, body = refusal_response(scope, refusal)
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 4000 + refusal.status})


async def _bridge(sock: socket.socket, stream: ByteStream) -> None:
    """Copy bytes between our end of the socketpair and the relay."""
    reader, writer = await asyncio.open_connection(sock=sock)

    async def up() -> None:
        while data := await reader.read(_CHUNK):
            await stream.write(data)
        await stream.write_eof()

    async def down() -> None:
        while data := await stream.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        writer.write_eof()

    try:
        await asyncio.gather(up(), down())
    except (OSError, SandbayError):
        pass
    finally:
        writer.close()
        await stream.close()


async def _client_to_app(receive: Receive, upstream: ClientConnection) -> int:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return int(message.get("code", 1000))
        if message.get("text") is not None:
            await upstream.send(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _app_to_client(send: Send, upstream: ClientConnection) -> None:
    async for data in upstream:
        if isinstance(data, str):
            await send({"type": "websocket.send", "text": data})
        else:
            await send({"type": "websocket.send", "bytes": data})


async def _open_upstream(
    scope: Scope, route: Route, stream: ByteStream
) -> tuple[ClientConnection, asyncio.Task[None]]:
    ours, theirs = socket.socketpair()
    bridge = asyncio.create_task(_bridge(theirs, stream))
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in upstream_headers(scope, route)
        if k not in _OWN_HEADERS and not k.startswith(b"sec-websocket-")
    ]
    origin: Any = next((v.decode() for k, v in scope["headers"] if k == b"origin"), None)
    host = next((v.decode() for k, v in scope["headers"] if k == b"host"), "localhost")
    try:
        upstream = await connect(
            f"ws://{host}{_strip_token_query(route.path)}",
            sock=ours,
            additional_headers=headers,
            subprotocols=scope.get("subprotocols") or None,
            origin=origin,
            user_agent_header=None,
            open_timeout=30,
            max_size=None,
            ping_interval=None,
            proxy=None,
        )
    except BaseException:
        bridge.cancel()
        ours.close()
        raise
    return upstream, bridge


async def relay_websocket(
    proxy: PreviewProxy, scope: Scope, receive: Receive, send: Send, route: Route
) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        route = await proxy.resolve(route)
        await proxy.authorise(scope, route)
        stream = await proxy.ports.connect(route.environment_id, route.port)
    except Refusal as refusal:
        await _refuse(scope, send, refusal)
        return
    except SandbayError as exc:
        await _refuse(scope, send, _upstream_refusal(exc, route))
        return
    try:
        upstream, bridge = await _open_upstream(scope, route, stream)
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        await stream.close()
        status = exc.response.status_code if isinstance(exc, InvalidStatus) else 502
        message = f"the app on port {route.port} refused the WebSocket ({exc})"
        await _refuse(scope, send, Refusal(status, "runtime_error", message))
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
    with proxy.holds.hold(route.environment_id):  # an open socket is activity
        await _relay(send, receive, upstream)
    bridge.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await bridge


async def _relay(send: Send, receive: Receive, upstream: ClientConnection) -> None:
    inbound = asyncio.create_task(_client_to_app(receive, upstream))
    outbound = asyncio.create_task(_app_to_client(send, upstream))
    try:
        done, _ = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
        if inbound in done:  # the client left: close the app's side with its code
            code = inbound.result() if not inbound.exception() else 1011
            await upstream.close(code=code if 1000 <= code < 5000 and code != 1005 else 1000)
        else:  # the app closed (or broke): tell the client
            code = upstream.close_code or 1011
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code if code != 1005 else 1000})
    except (ConnectionClosed, OSError):
        pass
    finally:
        for task in (inbound, outbound):
            task.cancel()
        await asyncio.gather(inbound, outbound, return_exceptions=True)
        await upstream.close()
