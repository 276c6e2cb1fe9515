"""Daytona's two error shapes and its organization header. The API answers
`{"path", "timestamp", "statusCode", "error", "message"}` (NestJS's exception filter);
the toolbox (the daemon in each sandbox) answers `{"statusCode", "message", "code",
"timestamp", "path", "method"}`. Both need the request's path, which a renderer is
not given, so a small middleware keeps it in a context variable."""

from contextvars import ContextVar
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Header
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbay.api.deps import current_principal
from sandbay.dialects.kit import iso_millis
from sandbay.domain.errors import Conflict, InvalidRequest, PermissionDenied, WrongState
from sandbay.domain.keys import Principal
from sandbay.domain.states import TRANSIENT, EnvState

API_PREFIXES = ("/sandbox", "/config")
TOOLBOX_PREFIX = "/toolbox"
_request: ContextVar[tuple[str, str]] = ContextVar("daytona_request", default=("", ""))


class RequestContext:
    """Remembers the path and method of Daytona requests for their error bodies. Not
    reset on the way out: the server-error handler runs outside this middleware, and
    each request runs in a context of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith((*API_PREFIXES, TOOLBOX_PREFIX)):
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            _request.set((path, scope["method"]))
        await self.app(scope, receive, send)


def _phrase(status: int) -> HTTPStatus | None:
    try:
        return HTTPStatus(status)
    except ValueError:
        return None


def _now() -> str:
    return iso_millis(datetime.now(UTC)) or ""


def render_api_error(status: int, error_type: str, message: str) -> JSONResponse:
    path, _ = _request.get()
    known = _phrase(status)
    body = {
        "path": path,
        "timestamp": _now(),
        "statusCode": status,
        "error": known.phrase if known else "Error",
        "message": message,
    }
    return JSONResponse(body, status_code=status)


def render_toolbox_error(status: int, error_type: str, message: str) -> JSONResponse:
    path, method = _request.get()
    known = _phrase(status)
    body = {
        "statusCode": status,
        "message": message,
        "code": known.name if known else "ERROR",
        "timestamp": _now(),
        "path": path.split("?", 1)[0],
        "method": method,
    }
    return JSONResponse(body, status_code=status)


async def daytona_principal(
    principal: Annotated[Principal, Depends(current_principal)],
    organization: Annotated[
        str | None,
        Header(
            alias="X-Daytona-Organization-ID",
            description="Organization of the request; must be the API key's own",
        ),
    ] = None,
) -> Principal:
    """The caller; an organization header naming another organization than the key's
    is refused as Daytona refuses it (403 "Invalid authentication context")."""
    if organization and organization != principal.org_id:
        raise PermissionDenied("Invalid authentication context")
    return principal


DaytonaPrincipal = Annotated[Principal, Depends(daytona_principal)]


def stop_refused(exc: WrongState) -> Conflict | InvalidRequest:
    """Daytona's answers to a stop it does not allow: 409 while a state change is in
    progress, 400 otherwise."""
    state = EnvState(exc.state)
    if state in TRANSIENT:
        return Conflict("Sandbox state change in progress")
    if state is EnvState.ERROR:
        return InvalidRequest("Sandbox is in an errored state")
    return InvalidRequest("Sandbox is not in a stoppable state")
