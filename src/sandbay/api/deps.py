"""Request dependencies: the platform's capability services (each a narrow getter
on the one `Platform`), one database session per request (committed before the
response is sent), the caller's Principal, and how the caller reached us."""

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Path
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.base import SecurityBase
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from sandbay.api.guard import PRINCIPAL_SCOPE_KEY
from sandbay.db.cas import commit_or_conflict
from sandbay.domain.errors import ApiError, PermissionDenied, SandbayError
from sandbay.domain.keys import Principal
from sandbay.services.access.service import AccessService, Origin
from sandbay.services.agents.secrets import SecretBox
from sandbay.services.agents.service import Agents
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.environments.snapshots import SnapshotsService
from sandbay.services.events.service import EventsService
from sandbay.services.inside.service import InsideService
from sandbay.services.tenancy.service import TenancyService
from sandbay.services.tenancy.sessions import COOKIE_NAME, CSRF_HEADER, SAFE_METHODS, csrf_matches
from sandbay.services.work.service import WorkService

if TYPE_CHECKING:  # the platform is built above the API; only its type is needed here
    from sandbay.platform import Platform

log = logging.getLogger(__name__)


def get_platform(connection: HTTPConnection) -> "Platform":
    platform: Platform = connection.app.state.platform
    return platform


# The getters are `async def` although they never await: FastAPI runs a plain `def`
# dependency on a worker thread, a thread hop per request for an attribute read.


async def get_environments(connection: HTTPConnection) -> EnvironmentsService:
    return get_platform(connection).environments


async def get_lifecycle(connection: HTTPConnection) -> Lifecycle:
    return get_platform(connection).environments.lifecycle


async def get_snapshots(connection: HTTPConnection) -> SnapshotsService:
    return get_platform(connection).snapshots


async def get_events(connection: HTTPConnection) -> EventsService:
    return get_platform(connection).events


async def get_inside(connection: HTTPConnection) -> InsideService:
    return get_platform(connection).inside


async def get_access(connection: HTTPConnection) -> AccessService:
    return get_platform(connection).access


async def get_work(connection: HTTPConnection) -> WorkService:
    return get_platform(connection).work


async def get_agents(connection: HTTPConnection) -> Agents:
    return get_platform(connection).agents


async def get_tenancy(connection: HTTPConnection) -> TenancyService:
    return get_platform(connection).tenancy


async def get_secret_box(connection: HTTPConnection) -> SecretBox:
    """What encrypts the organization's credentials and secrets at rest."""
    return get_platform(connection).secrets


EnvironmentsDep = Annotated[EnvironmentsService, Depends(get_environments)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
SnapshotsDep = Annotated[SnapshotsService, Depends(get_snapshots)]
EventsDep = Annotated[EventsService, Depends(get_events)]
InsideDep = Annotated[InsideService, Depends(get_inside)]
AccessDep = Annotated[AccessService, Depends(get_access)]
WorkDep = Annotated[WorkService, Depends(get_work)]
AgentsDep = Annotated[Agents, Depends(get_agents)]
TenancyDep = Annotated[TenancyService, Depends(get_tenancy)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]

#: An environment in a path: its id or its name (Daytona's `sandboxIdOrName`).
EnvRef = Annotated[str, Path(min_length=1, description="environment id (env_…) or name")]


def request_origin(connection: HTTPConnection) -> Origin:
    """How the caller reached the API: the addresses we hand out default to it."""
    url = connection.url
    return Origin(scheme=url.scheme, host=url.hostname, port=url.port, netloc=url.netloc)


async def db_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with get_platform(connection).sessions() as session:
        yield session
        try:
            await commit_or_conflict(session)  # a lost compare-and-set is a 409
        except SQLAlchemyError as exc:  # rendered as a 500 envelope, never a reset
            log.exception("commit failed")
            raise ApiError("the database refused the change") from exc


#: `scope="function"`: the commit runs before the response is sent, so a client
#: never sees an answer for a change that is not yet durable.
SessionDep = Annotated[AsyncSession, Depends(db_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class ApiKeyPrincipal(SecurityBase):
    """The caller's Principal, from `X-API-KEY` or else `Authorization: Bearer`, or
    else a dashboard session's cookie (with its CSRF header on a change).

    One dependency that is itself the API-key security scheme (what FastAPI's
    `APIKeyHeader` declares, under the same name) and has the bearer scheme as its
    only sub-dependency: the OpenAPI document lists both schemes on every route as
    before, and a request solves two dependencies instead of four (each costs
    microseconds on every authenticated request)."""

    def __init__(self) -> None:
        self.model = APIKey(**{"in": APIKeyIn.header}, name="X-API-KEY", description="API key")
        self.scheme_name = "APIKeyHeader"

    async def __call__(self, connection: HTTPConnection, bearer: _Bearer) -> Principal:
        resolved: Principal | None = connection.scope.get(PRINCIPAL_SCOPE_KEY)
        if resolved is not None:
            return resolved  # by the request guard, from the same headers
        secret = connection.headers.get("x-api-key") or (bearer.credentials if bearer else None)
        cookie = connection.cookies.get(COOKIE_NAME)
        if secret is None and cookie:
            method = connection.scope.get("method", "GET")
            if method not in SAFE_METHODS and not csrf_matches(
                cookie, connection.headers.get(CSRF_HEADER)
            ):
                raise PermissionDenied(
                    "a dashboard session changes nothing without its X-CSRF-Token header"
                )
            return await get_platform(connection).tenancy.resolve_session(cookie)
        return await get_platform(connection).tenancy.resolve_principal(secret)


current_principal = ApiKeyPrincipal()
PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def connection_principal(connection: HTTPConnection) -> Principal:
    """Authenticate a WebSocket (where the HTTP security schemes do not apply) by
    `X-API-KEY` or `Authorization: Bearer`, or a dashboard session's cookie."""
    secret = connection.headers.get("x-api-key")
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if not secret and scheme.lower() == "bearer":
        secret = token.strip()
    cookie = connection.cookies.get(COOKIE_NAME)
    if not secret and cookie:
        # A browser sends the cookie with a WebSocket from any page (no CORS, no
        # SameSite for same-site pages): only our own pages may use it.
        if not same_origin(connection):
            raise PermissionDenied("a dashboard session connects only from the dashboard")
        return await get_platform(connection).tenancy.resolve_session(cookie)
    return await get_platform(connection).tenancy.resolve_principal(secret)


def same_origin(connection: HTTPConnection) -> bool:
    """Whether the `Origin` header names the host this request was sent to."""
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if not origin or not host:
        return False
    scheme, _, netloc = origin.partition("://")
    secure = connection.url.scheme in ("https", "wss")
    return netloc == host and scheme == ("https" if secure else "http")


def close_code(error: SandbayError) -> int:
    """WebSocket close code for a refusal: 4000 + the HTTP status (4404, 4409…)."""
    return 4000 + error.status_code


def etag(version: int) -> str:
    """An environment's version as a strong ETag (`"7"`), the value `If-Match` takes."""
    return f'"{version}"'


async def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='Change only at this version (the ETag, e.g. "7"); else 412',
        ),
    ] = None,
) -> frozenset[int] | None:
    """The versions `If-Match` names; None for no header or `*`. A weak or foreign tag
    never matches (strong comparison, RFC 9110), so it is a 412."""
    if value is None or value.strip() == "*":
        return None
    tags = (tag.strip() for tag in value.split(","))
    return frozenset(
        int(tag[1:-1])
        for tag in tags
        if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit() and len(tag) < 20
    )


IfMatchDep = Annotated[frozenset[int] | None, Depends(if_match)]
