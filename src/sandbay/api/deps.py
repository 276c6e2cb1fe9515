"""Request dependencies: the app's services, one database session per request
(committed before the response is sent), and the caller's Principal."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from sandbay.domain.errors import ApiError, ConcurrentUpdate
from sandbay.domain.keys import Principal, hash_key
from sandbay.domain.pools import WarmPoolSpec
from sandbay.domain.work import LeaseLimits
from sandbay.runtime.provider import RuntimeProvider
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.environments.records import Placement
from sandbay.services.events.bus import EventBus
from sandbay.services.tenancy.auth import KeyCache, authenticate, check_secret
from sandbay.services.work.protocol import WorkWakeups

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """What routes may reach, built once by `create_app`'s lifespan."""

    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    provider: RuntimeProvider
    holds: ActivityHolds
    placement: Placement
    admin_key: str | None
    default_stop_timeout: float
    key_cache: KeyCache
    work_wakeups: WorkWakeups
    work_limits: LeaseLimits = field(default_factory=LeaseLimits)
    warm_pools: list[WarmPoolSpec] = field(default_factory=list)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def db_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session
        try:
            await session.commit()
        except StaleDataError as exc:  # lost a compare-and-set at the last moment
            raise ConcurrentUpdate("the object changed under this request; try again") from exc
        except SQLAlchemyError as exc:  # rendered as a 500 envelope, never a reset
            log.exception("commit failed")
            raise ApiError("the database refused the change") from exc


#: `scope="function"`: the commit runs before the response is sent, so a client
#: never sees an answer for a change that is not yet durable.
SessionDep = Annotated[AsyncSession, Depends(db_session, scope="function")]

_api_key = APIKeyHeader(name="X-API-KEY", auto_error=False, description="API key")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


async def current_principal(
    services: ServicesDep,
    api_key: Annotated[str | None, Depends(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate with a short session of its own, so long requests (wait,
    streams) hold no database connection."""
    secret = api_key or (bearer.credentials if bearer else None)
    return await resolve_principal(services, secret)


async def resolve_principal(services: Services, secret: str | None) -> Principal:
    """Operator key, a recently verified key (no database read), or a lookup."""
    operator = check_secret(secret, admin_key=services.admin_key)
    if operator is not None:
        return operator
    if (cached := services.key_cache.get(hash_key(secret or ""))) is not None:
        return cached
    async with services.sessions() as session:
        principal = await authenticate(session, secret, admin_key=services.admin_key)
        await session.commit()
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
