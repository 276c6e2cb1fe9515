"""Daytona's two error shapes and its organization header. The API answers
`{"path", "timestamp", "statusCode", "error", "message"}` (NestJS's exception filter);
the toolbox (the daemon in each sandbox) answers `{"statusCode", "message", "code",
"timestamp", "path", "method", "source": "DAYTONA_DAEMON"}`, both read off the request
they answer. The SDK picks its exception class by (`source`, `code`) first, so the
toolbox names a missing file `FILE_NOT_FOUND` and a git failure its `GIT_…` code."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from sandbay.api.deps import current_principal
from sandbay.dialects.kit import iso_millis
from sandbay.domain.errors import (
    Conflict,
    InvalidRequest,
    PathDenied,
    PathNotFound,
    PermissionDenied,
    SandbayError,
    WrongState,
)
from sandbay.domain.keys import Principal
from sandbay.domain.states import TRANSIENT, EnvState
from sandbay.services.inside.git import GitProblem, git_problem

API_PREFIXES = (
    "/sandbox",
    "/config",
    "/snapshots",
    "/volumes",
    "/object-storage",
    "/warm-pools",
    "/secret",
)
TOOLBOX_PREFIX = "/toolbox"
#: The toolbox's `source`, which makes the SDK read `code`.
DAEMON_SOURCE = "DAYTONA_DAEMON"
#: Daytona's daemon codes for git failures and the status its toolbox gives each.
GIT_CODES: dict[GitProblem, tuple[int, str]] = {
    GitProblem.AUTH_FAILED: (401, "GIT_AUTH_FAILED"),
    GitProblem.REPO_NOT_FOUND: (404, "GIT_REPO_NOT_FOUND"),
    GitProblem.BRANCH_NOT_FOUND: (404, "GIT_BRANCH_NOT_FOUND"),
    GitProblem.BRANCH_EXISTS: (409, "GIT_BRANCH_EXISTS"),
    GitProblem.PUSH_REJECTED: (409, "GIT_PUSH_REJECTED"),
    GitProblem.DIRTY_WORKTREE: (409, "GIT_DIRTY_WORKTREE"),
    GitProblem.MERGE_CONFLICT: (409, "GIT_MERGE_CONFLICT"),
    GitProblem.TRANSPORT_FAILED: (502, "GIT_TRANSPORT_FAILED"),
    GitProblem.REMOTE_REJECTED: (422, "GIT_REMOTE_REJECTED"),
}
_DAEMON_CODES = frozenset(
    {code for _, code in GIT_CODES.values()}
    | {"FILE_NOT_FOUND", "FILE_ACCESS_DENIED", "INVALID_FILE_PATH", "FILE_READ_FAILED"}
)


class DaemonError(SandbayError):
    """A toolbox failure that Daytona's daemon names with one of its own codes (carried
    as the error type, which the toolbox renderer reads)."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status_code = status
        self.error_type = code


@contextmanager
def file_errors() -> Iterator[None]:
    """A missing or refused path as the daemon names it."""
    try:
        yield
    except PathNotFound as exc:
        raise DaemonError(exc.message, status=404, code="FILE_NOT_FOUND") from exc
    except PathDenied as exc:
        raise DaemonError(exc.message, status=403, code="FILE_ACCESS_DENIED") from exc


@contextmanager
def git_errors() -> Iterator[None]:
    """A git failure as the daemon names it (its status and `GIT_…` code), from what
    git said; a repository path that is not there is GIT_REPO_NOT_FOUND."""
    try:
        yield
    except PathNotFound as exc:
        raise DaemonError(exc.message, status=404, code="GIT_REPO_NOT_FOUND") from exc
    except PathDenied as exc:
        raise DaemonError(exc.message, status=403, code="FILE_ACCESS_DENIED") from exc
    except InvalidRequest as exc:
        problem = git_problem(exc.message)
        if problem is None:
            raise
        status, code = GIT_CODES[problem]
        raise DaemonError(exc.message, status=status, code=code) from exc


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
        generic = known.name if known else "ERROR"
        code = error_type if error_type in _DAEMON_CODES else generic
        body = {
            "statusCode": status,
            "message": message,
            "code": code,
            "timestamp": _now(),
            "path": path,
            "method": request.method,
            "source": DAEMON_SOURCE,
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
