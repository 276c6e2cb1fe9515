"""The API's front door, as one pure-ASGI middleware: who is calling (resolved once
and handed to the routes' auth dependency), the caller's rate limits (429 with
`Retry-After`), `Idempotency-Key` on POST, and an audit record of every mutating
call with the status it got, refused ones included."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbay.api.errors import ErrorRenderers
from sandbay.api.idempotency import Idempotency, idempotency_key
from sandbay.api.ratelimit import RateLimiter
from sandbay.domain.errors import SandbayError
from sandbay.domain.keys import Principal
from sandbay.services.events.requests import RequestAudit, RequestRecord
from sandbay.services.tenancy.sessions import COOKIE_NAME, CSRF_HEADER, SAFE_METHODS, csrf_matches

if TYPE_CHECKING:  # the platform is built above the API; only its type is needed here
    from sandbay.platform import Platform

#: Where the auth dependency finds the Principal this middleware resolved.
PRINCIPAL_SCOPE_KEY = "sandbay.principal"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def request_secret(scope: Scope) -> str | None:
    """The API key of a request: `X-API-KEY`, else `Authorization: Bearer`."""
    bearer = None
    for name, value in scope["headers"]:
        if name == b"x-api-key" and value:
            return str(value.decode("latin-1"))
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        platform: Callable[[], "Platform | None"],
        limiter: RateLimiter,
        idempotency: Idempotency,
        audit: RequestAudit,
        renderers: ErrorRenderers,
    ) -> None:
        self.app = app
        self.platform = platform
        self.limiter = limiter
        self.idempotency = idempotency
        self.audit = audit
        self.renderers = renderers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        platform = self.platform() if scope["type"] == "http" else None
        if platform is None:
            return await self.app(scope, receive, send)
        secret = request_secret(scope)
        principal = await (
            _resolve(platform, secret) if secret else _resolve_session(platform, scope)
        )
        if principal is not None:
            scope[PRINCIPAL_SCOPE_KEY] = principal
        status = 500  # what an exception that escapes the app becomes

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, seen, platform, principal)
        finally:
            if scope["method"] in MUTATING:
                self.audit.record(_record(scope, principal, status))

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        platform: "Platform",
        principal: Principal | None,
    ) -> None:
        if principal is None:
            return await self.app(scope, receive, send)
        if wait := self.limiter.take(principal.key_id, principal.org_id):
            render = self.renderers.for_path(scope["path"])
            response = render(
                Request(scope, receive),
                429,
                "rate_limit_error",
                f"too many requests for this key or organization; retry in {wait} s",
            )
            response.headers["Retry-After"] = str(wait)
            return await response(scope, receive, send)
        key = idempotency_key(scope) if scope["method"] == "POST" else None
        if key is None:
            return await self.app(scope, receive, send)
        await self.idempotency.handle(
            self.app,
            scope,
            receive,
            send,
            sessions=platform.sessions,
            box=platform.secrets,
            org_id=principal.org_id or "*admin",
            key=key,
        )
        return None


async def _resolve(platform: "Platform", secret: str | None) -> Principal | None:
    if not secret:
        return None
    try:
        return await platform.tenancy.resolve_principal(secret)
    except SandbayError:  # the route's own auth answers the refusal
        return None


async def _resolve_session(platform: "Platform", scope: Scope) -> Principal | None:
    """A dashboard session's Principal, so its calls are rate-limited and audited as
    its key's; a change without the CSRF token is left to the route's auth (403)."""
    request = Request(scope)
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    if scope["method"] not in SAFE_METHODS and not csrf_matches(
        cookie, request.headers.get(CSRF_HEADER)
    ):
        return None
    try:
        return await platform.tenancy.resolve_session(cookie)
    except SandbayError:
        return None


def _record(scope: Scope, principal: Principal | None, status: int) -> RequestRecord:
    """The route as declared (`/v1/environments/{env}`), never the raw path, which
    may carry what a client should not find in a log."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return RequestRecord(
        org_id=principal.org_id if principal else None,
        actor=principal.actor if principal else "anonymous",
        key_id=principal.key_id if principal else None,
        method=scope["method"],
        route=str(template) if template else "(no route)",
        status=status,
    )
