"""Daytona's two error shapes and its organization header. The API answers
`{"path", "timestamp", "statusCode", "error", "message"}` (NestJS's exception filter);
the toolbox (the daemon in each sandbox) answers `{"statusCode", "message", "code",
"timestamp", "path", "method"}`, both read off the request they answer."""

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from sandbay.api.deps import current_principal
from sandbay.dialects.kit import iso_millis
from sandbay.domain.errors import Conflict, InvalidRequest, PermissionDenied, WrongState
from sandbay.domain.keys import Principal
from sandbay.domain.states import TRANSIENT, EnvState

API_PREFIXES = ("/sandbox", "/config", "/snapshots", "/volumes", "/preview", "/object-storage")
TOOLBOX_PREFIX = "/toolbox"


def _phrase(status: int) -> HTTPStatus | None:
    try:
        return HTTPStatus(status)
    except ValueError:
        return None


def _now() -> str:
    return iso_millis(datetime.now(UTC)) or ""


def render_error(request: Request, status: int, error_type: str, message: str) -> JSONResponse:
    """The toolbox's shape under its prefix, the API's elsewhere. The path is the one
    routed (the scope's, not re-escaped as `request.url` does); the API's keeps the
    query, as NestJS's `request.url`."""
    path: str = request.scope["path"]
    known = _phrase(status)
    if path.startswith(TOOLBOX_PREFIX):
        body = {
            "statusCode": status,
            "message": message,
            "code": known.name if known else "ERROR",
            "timestamp": _now(),
            "path": path,
            "method": request.method,
        }
    else:
        query = request.scope.get("query_string", b"").decode("latin-1")
        body = {
            "path": path + (f"?{query}" if query else ""),
            "timestamp": _now(),
            "statusCode": status,
            "error": known.phrase if known else "Error",
            "message": message,
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
