"""Daytona's event stream: Socket.IO at `/socket.io/` (the SDK connects to its API
URL's origin with `auth={"token": <API key>}` and `?organizationId=`), as Daytona's
notification gateway serves it: `sandbox.created` with the Sandbox, and
`sandbox.state.updated` with `{"sandbox", "oldState", "newState"}`, for the
sandboxes of the key's organization (and only those the key may see), from the
moment it connects. The SDK's waits (`start`, `stop`, `delete(wait=True)`…) wake on
these instead of their next poll."""

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import socketio  # type: ignore[import-untyped]
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbay.domain.errors import PermissionDenied, SandbayError
from sandbay.domain.states import EnvState
from sandbay.services.events.watch import CREATED, EnvironmentChange, watch_environments

from .shapes import STATE, DaytonaSandbox

if TYPE_CHECKING:
    from sandbay.platform import Platform

log = logging.getLogger(__name__)

PATH = "/socket.io/"
SANDBOX_CREATED = "sandbox.created"
SANDBOX_STATE_UPDATED = "sandbox.state.updated"


def _secret(environ: dict[str, Any], auth: object) -> str | None:
    """The API key: the SDK's `auth.token`, else `X-API-KEY` or a bearer header."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    if key := environ.get("HTTP_X_API_KEY"):
        return str(key)
    scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _toolbox_url(scope: Scope) -> str:
    base = str(HTTPConnection(scope).base_url).rstrip("/")
    return base.replace("ws://", "http://", 1).replace("wss://", "https://", 1) + "/toolbox"


def _state(value: str | None) -> str | None:
    known = {state.value: state for state in EnvState}
    return STATE[known[value]] if value in known else None


def message(change: EnvironmentChange, toolbox_url: str) -> tuple[str, dict[str, Any]]:
    """The Socket.IO event and its payload for one change. The Sandbox shows the state
    the event moved to, so each payload is consistent on its own."""
    event, sandbox = change.event, DaytonaSandbox.of(change.environment, toolbox_url=toolbox_url)
    if event.type == CREATED:
        return SANDBOX_CREATED, sandbox.model_dump(by_alias=True, mode="json")
    new = _state(event.to_state) or sandbox.state
    shown = sandbox.model_copy(update={"state": new}).model_dump(by_alias=True, mode="json")
    return SANDBOX_STATE_UPDATED, {
        "sandbox": shown,
        "oldState": _state(event.from_state),
        "newState": new,
    }


class Gateway:
    """One Socket.IO server: a feed task per connection, from the platform's events."""

    def __init__(self) -> None:
        self.server = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
        self.asgi = socketio.ASGIApp(self.server, socketio_path=PATH.strip("/"))
        self._feeds: dict[str, asyncio.Task[None]] = {}
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        scope: Scope = environ["asgi.scope"]
        platform: Platform = scope["app"].state.platform
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        try:
            principal = await platform.tenancy.resolve_principal(_secret(environ, auth))
            organization = query.get("organizationId", [""])[0]
            if organization and organization != principal.org_id:
                raise PermissionDenied("Invalid authentication context")
            watch = await watch_environments(platform.events, principal)
        except SandbayError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from exc
        self._feeds[sid] = asyncio.create_task(
            self._feed(sid, watch.changes(), _toolbox_url(scope)), name=f"socket.io {sid}"
        )

    async def _feed(self, sid: str, changes: Any, toolbox_url: str) -> None:
        try:
            async for change in changes:
                event, payload = message(change, toolbox_url)
                await self.server.emit(event, payload, to=sid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Socket.IO feed %s failed", sid)
            with contextlib.suppress(Exception):
                await self.server.disconnect(sid)

    async def _disconnect(self, sid: str, *reason: object) -> None:
        task = self._feeds.pop(sid, None)
        if task is not None:
            task.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)


def socket_io(app: ASGIApp) -> ASGIApp:
    """The app, with Daytona's Socket.IO endpoint in front of it."""
    gateway = Gateway()

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith(PATH):
            await gateway(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
