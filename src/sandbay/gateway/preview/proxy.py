"""The preview proxy: a port of a running environment, reachable through the server.

Two spellings of one address:
- host-based, `{port}-{id hex}.{preview_domain}` (each port its own origin: cookies
  and scripts of one preview cannot reach another's), what browsers should use;
- path-based, `/preview/{env id}/{port}/…` on the API's own host, for local use
  (apps that use absolute paths may need the host form).

A private environment needs a preview token: the `X-Sandbay-Preview-Token` header
(or Daytona's `X-Daytona-Preview-Token`), or once the `sandbay_preview_token` query
parameter, which is exchanged for an HttpOnly cookie scoped to that preview (and
removed from the URL by a redirect). `public: true` opens the previews to anyone. A
signed URL carries its token in place of the environment id
(`{port}-{token}.{preview_domain}`, `/preview/{token}/{port}/`) and needs nothing
else until it expires. HTTP is streamed both ways; WebSockets
are relayed message by message (`preview_ws`). The upstream connection is the
runtime's port relay (no port is published on the host); connections are pooled
and kept alive. Refusals are a small HTML page for browsers, the JSON error
envelope otherwise."""

import asyncio
import html
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpcore
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbay.domain.access import environment_id_from, parse_preview_label
from sandbay.domain.errors import Conflict, PortUnreachable, SandbayError, WaitTimeout
from sandbay.domain.states import EnvState
from sandbay.runtime.access import ByteStream, PortConnector
from sandbay.services.access.preview import PreviewGate, PreviewTarget
from sandbay.services.access.signed import looks_signed
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.environments.wake import WakeCause, Waker
from sandbay.services.tenancy.sessions import COOKIE_NAME as SESSION_COOKIE

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-sandbay-preview-token"  # noqa: S105  (names, not secrets)
#: Daytona's name for the same header (its SDK's users send this one).
DAYTONA_TOKEN_HEADER = "x-daytona-preview-token"  # noqa: S105
_TOKEN_HEADERS = (TOKEN_HEADER.encode(), DAYTONA_TOKEN_HEADER.encode())
TOKEN_QUERY = "sandbay_preview_token"  # noqa: S105
COOKIE = "sandbay_preview"
PATH_PREFIX = "/preview/"
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    }
)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: the environment's port, and the path it asks there."""

    environment_id: str  # "" until a signed URL's token is resolved
    port: int
    path: str  # the upstream path, query string included
    prefix: str  # "" (host form) or "/preview/{id}/{port}" (path form)
    signed: str | None = None  # a signed URL's token, in place of the environment id


class Refusal(Exception):
    """A request the proxy answers itself (status, error type, message)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def route_of(scope: Scope, domain: str) -> Route | None:
    """The preview a request addresses, if it addresses one."""
    query = scope.get("query_string", b"").decode("latin-1")
    host = (_header(scope, b"host") or "").rsplit(":", 1)[0].lower().rstrip(".")
    suffix = "." + domain.lower().strip(".")
    if domain and host.endswith(suffix):
        label = host[: -len(suffix)]
        parsed = parse_preview_label(label)
        number, _, token = label.partition("-")
        by_token = number.isdigit() and 1 <= int(number) <= 65535 and looks_signed(token)
        if parsed is not None or by_token:
            target = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            target = target.split("?", 1)[0] + (f"?{query}" if query else "")
            if parsed is None:
                return Route("", int(number), target, "", signed=token)
            return Route(parsed[0], parsed[1], target, "")
    path = scope["path"]
    if not path.startswith(PATH_PREFIX):
        return None
    parts = path[len(PATH_PREFIX) :].split("/", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    env_id, port = environment_id_from(parts[0]), int(parts[1])
    signed = parts[0] if env_id is None and looks_signed(parts[0]) else None
    if (env_id is None and signed is None) or not 1 <= port <= 65535:
        return None
    rest = "/" + (parts[2] if len(parts) > 2 else "") + (f"?{query}" if query else "")
    return Route(env_id or "", port, rest, f"/preview/{parts[0]}/{port}", signed=signed)


def _wants_html(scope: Scope) -> bool:
    return "text/html" in (_header(scope, b"accept") or "")


def refusal_response(
    scope: Scope, refusal: Refusal
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if _wants_html(scope):
        title = html.escape(refusal.message)
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>sandbay preview</title>"
            "<style>body{font:16px system-ui,sans-serif;margin:4rem auto;max-width:40rem;"
            "color:#222}h1{font-size:1.3rem}code{background:#eee;padding:0 .2em}</style>"
            f"</head><body><h1>{refusal.status}: preview unavailable</h1><p>{title}</p>"
            "<p><small>sandbay preview proxy</small></p></body></html>"
        ).encode()
        media = b"text/html; charset=utf-8"
    else:
        body = json.dumps(
            {"error": {"type": refusal.error_type, "message": refusal.message}}
        ).encode()
        media = b"application/json"
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    headers.append((b"cache-control", b"no-store"))
    return refusal.status, headers, body


class _RelayStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            await self._stream.write(buffer)

    async def aclose(self) -> None:
        await self._stream.close()

    def get_extra_info(self, info: str) -> Any:
        # An idle kept-alive connection whose relay has ended must not be reused.
        return self._stream.at_eof() if info == "is_readable" else None


class _RelayBackend(httpcore.AsyncNetworkBackend):
    """httpcore connects to `http://{environment id}:{port}` through the port relay."""

    def __init__(self, ports: PortConnector) -> None:
        self._ports = ports

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return _RelayStream(await self._ports.connect(host, port))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class PreviewProxy:
    """Authorises and forwards preview requests (`PreviewRouter` hands them over)."""

    def __init__(
        self,
        *,
        gate: PreviewGate,
        ports: PortConnector,
        holds: ActivityHolds,
        domain: str,
        waker: Waker | None = None,
    ) -> None:
        self.gate = gate
        self.ports = ports
        self.holds = holds
        self.domain = domain
        self.waker = waker
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_RelayBackend(ports),
            max_connections=1000,
            max_keepalive_connections=100,
            keepalive_expiry=30.0,
            retries=0,
        )

    async def close(self) -> None:
        await self._pool.aclose()

    async def resolve(self, route: Route) -> Route:
        """A signed URL's route with the environment its token opens (Refusal when
        the token is unknown, expired or expired early); others as they are."""
        if route.signed is None:
            return route
        found = await self.gate.signed(route.signed, route.port)
        if found is None:
            raise Refusal(403, "permission_error", "the signed preview URL is invalid or expired")
        return replace(route, environment_id=found[0])

    async def authorise(self, scope: Scope, route: Route) -> tuple[str | None, datetime | None]:
        """Check the request may reach the preview (a `resolve`d route); returns the
        token it brought and when that token expires, if it brought one. Raises
        `Refusal`. Credentials are checked before existence: without a token that
        opens it, an id that exists (and is not public) and one that does not get
        the same 401 or 403, so nobody learns which ids are real."""
        target = await self.gate.target(route.environment_id)
        if target is not None and not target.managed:
            target = None
        token = None if route.signed else _token_of(scope)
        expires: datetime | None = None
        if route.signed is None and (target is None or not target.public):
            if token is None:
                raise Refusal(
                    401,
                    "authentication_error",
                    "the preview of a private environment needs a preview token (the "
                    f"{TOKEN_QUERY} query parameter or the X-Sandbay-Preview-Token header)",
                )
            expires = await self.gate.allows(token, route.environment_id, route.port)
            if expires is None:
                raise Refusal(403, "permission_error", "the preview token is invalid or expired")
        if target is None:
            raise Refusal(404, "not_found_error", f"no environment {route.environment_id}")
        if target.state is not EnvState.RUNNING:
            await self._wake(scope, route, target, token)
        await self.gate.touch(route.environment_id)
        return token, expires

    async def _wake(
        self, scope: Scope, route: Route, target: PreviewTarget, token: str | None
    ) -> None:
        """Wake a sleeping environment that has `wake_on_request` (the request is
        authorised by now) and wait for its port; refuse any other that is not running."""
        if self.waker is None or not await self.waker.wakeable(target.environment_id):
            raise Refusal(
                409,
                "conflict_error",
                f"environment {route.environment_id} is {target.state.value}: "
                "previews are open only while it runs",
            )
        client = scope.get("client") or ("", 0)
        cause = WakeCause(
            by="preview",
            client=str(client[0]),
            port=route.port,
            preview_token=route.signed or token,
        )
        try:
            await self.waker.wake(target.org_id, target.environment_id, cause, port=route.port)
        except WaitTimeout as exc:
            raise Refusal(504, "timeout_error", exc.message) from None
        except SandbayError as exc:
            status = exc.status_code if 400 <= exc.status_code < 500 else 502
            message = f"waking the environment failed: {exc.message}"
            raise Refusal(status, exc.error_type, message) from None

    async def http(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        try:
            route = await self.resolve(route)
            token, expires = await self.authorise(scope, route)
        except Refusal as refusal:
            await _send_refusal(scope, send, refusal)
            return
        if (
            route.signed is None
            and _query_token(scope) is not None
            and scope["method"] in ("GET", "HEAD")
        ):
            await _redirect_with_cookie(scope, send, route, token, expires)
            return
        await self._forward(scope, receive, send, route)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        request = httpcore.Request(
            scope["method"],
            httpcore.URL(
                scheme=b"http",
                host=route.environment_id.encode(),
                port=route.port,
                target=_strip_token_query(route.path).encode("latin-1"),
            ),
            headers=_framed(scope, upstream_headers(scope, route)),
            content=_request_body(receive),
        )
        started = False
        try:
            with self.holds.hold(route.environment_id):
                response = await self._pool.handle_async_request(request)
                try:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": response.status,
                            "headers": _response_headers(response.headers, route),
                        }
                    )
                    started = True
                    async for chunk in response.aiter_stream():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                finally:
                    await response.aclose()
        except _ClientGone:
            return
        except (SandbayError, httpcore.ProtocolError, httpcore.NetworkError, OSError) as exc:
            if started:
                raise
            await _send_refusal(scope, send, _upstream_refusal(exc, route))


class _ClientGone(Exception):
    pass


def _upstream_refusal(exc: Exception, route: Route) -> Refusal:
    if isinstance(exc, PortUnreachable):
        return Refusal(502, "runtime_error", f"nothing answers on port {route.port}: {exc.message}")
    if isinstance(exc, Conflict):
        return Refusal(409, "conflict_error", f"environment {route.environment_id}: {exc.message}")
    if isinstance(exc, SandbayError):
        return Refusal(502, "runtime_error", exc.message)
    return Refusal(502, "runtime_error", f"the app on port {route.port} broke the connection")


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body"):
            return


def _token_of(scope: Scope) -> str | None:
    token = (
        _header(scope, _TOKEN_HEADERS[0])
        or _header(scope, _TOKEN_HEADERS[1])
        or _query_token(scope)
    )
    if token:
        return token
    cookie = SimpleCookie()
    try:
        cookie.load(_header(scope, b"cookie") or "")
    except Exception:  # a malformed Cookie header is the client's problem, not ours
        return None
    morsel = cookie.get(COOKIE)
    return str(morsel.value) if morsel else None


def _query_token(scope: Scope) -> str | None:
    query: bytes = scope.get("query_string", b"")
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == TOKEN_QUERY:
            return value
    return None


def _strip_token_query(path: str) -> str:
    base, sep, query = path.partition("?")
    if not sep:
        return path
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != TOKEN_QUERY]
    return base + (f"?{urlencode(kept)}" if kept else "")


def upstream_headers(scope: Scope, route: Route) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones and our token, plus X-Forwarded-*."""
    out: list[tuple[bytes, bytes]] = []
    host = b""
    for key, value in scope.get("headers", ()):
        name = key.lower()
        if name in _HOP_BY_HOP or name in _TOKEN_HEADERS:
            continue
        if name == b"host":
            host = value
        if name == b"cookie":
            value = _strip_cookie(value)
            if not value:
                continue
        out.append((name, value))
    client = scope.get("client") or ("", 0)
    out.append((b"x-forwarded-for", str(client[0]).encode()))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").replace("ws", "http").encode()))
    if host:
        out.append((b"x-forwarded-host", host))
    if route.prefix:
        out.append((b"x-forwarded-prefix", route.prefix.encode()))
    return out


def _framed(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A body the client sent chunked goes on chunked (Transfer-Encoding is per hop,
    and without a framing header a request has no body)."""
    if _header(scope, b"content-length") is None and _header(scope, b"transfer-encoding"):
        headers.append((b"transfer-encoding", b"chunked"))
    return headers


#: sandbay's own cookies, never passed to an environment: a preview's token, and the
#: dashboard's session (the browser sends it with a path-form preview request, which
#: shares the dashboard's origin).
_OWN_COOKIES = frozenset({COOKIE.encode(), SESSION_COOKIE.encode()})
#: A path-form preview shares the API's and the dashboard's origin: its documents run
#: sandboxed in an opaque origin (no `allow-same-origin`), so a workload's scripts can
#: neither send the dashboard's SameSite=Strict session with a request nor read an
#: answer of this origin, nor register a service worker here. The host form is each
#: preview's own origin and runs unrestricted.
PATH_FORM_CSP = (
    b"sandbox allow-scripts allow-forms allow-modals allow-popups "
    b"allow-popups-to-escape-sandbox allow-downloads"
)


def _strip_cookie(value: bytes) -> bytes:
    parts = [p for p in value.split(b";") if p.strip().split(b"=", 1)[0] not in _OWN_COOKIES]
    return b";".join(parts).strip()


def _response_headers(
    headers: list[tuple[bytes, bytes]], route: Route
) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in headers:
        name = key.lower()
        if name in _HOP_BY_HOP:
            continue
        if (
            name == b"location"
            and route.prefix
            and value.startswith(b"/")
            and not value.startswith(b"//")
        ):
            value = route.prefix.encode() + value  # keep redirects inside the path form
        out.append((name, value))
    if route.prefix:
        out.append((b"content-security-policy", PATH_FORM_CSP))
    return out


async def _send_refusal(scope: Scope, send: Send, refusal: Refusal) -> None:
    status, headers, body = refusal_response(scope, refusal)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(
    scope: Scope, send: Send, route: Route, token: str | None, expires: datetime | None
) -> None:
    """Exchange the query token for a cookie, and drop it from the address bar."""
    location = (route.prefix + _strip_token_query(route.path)) or "/"
    path = route.prefix + "/" if route.prefix else "/"
    cookie = f"{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Lax"
    if expires is not None:
        seconds = max(0, int((expires - datetime.now(UTC)).total_seconds()))
        cookie += f"; Max-Age={seconds}"
    if scope.get("scheme") == "https":
        cookie += "; Secure"
    headers = [
        (b"location", location.encode("latin-1")),
        (b"set-cookie", cookie.encode("latin-1")),
        (b"cache-control", b"no-store"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class PreviewRouter:
    """ASGI middleware: preview requests (by host or by path) go to the proxy that
    `proxy()` returns (None until the platform is up); everything else goes on to
    the API."""

    def __init__(
        self, app: ASGIApp, *, domain: str, proxy: Callable[[], "PreviewProxy | None"]
    ) -> None:
        self.app = app
        self.domain = domain
        self._proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        route = route_of(scope, self.domain)
        proxy = self._proxy() if route else None
        if route is None or proxy is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            if (
                route.prefix
                and scope["path"].rstrip("/") == route.prefix.rstrip("/")
                and not scope["path"].endswith("/")
            ):
                await _send_redirect(send, route.prefix + "/" + _query_suffix(scope))
                return
            await proxy.http(scope, receive, send, route)
        else:
            from sandbay.gateway.preview.websocket import relay_websocket

            await relay_websocket(proxy, scope, receive, send, route)


def _query_suffix(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return f"?{query}" if query else ""


async def _send_redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    message: Message = {"type": "http.response.start", "status": 308, "headers": headers}
    await send(message)
    await send({"type": "http.response.body", "body": b""})
