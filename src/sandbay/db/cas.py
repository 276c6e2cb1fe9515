"""Writes that can lose a race, and what losing means: retrying a read-decide-write
against the compare-and-set on `version` (the loser re-reads and decides again, so
concurrent requests never see a 500), a commit or flush that lost it, and a unique
index that refused a write. Services use these instead of catching SQLAlchemy's
exceptions themselves."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from sandbay.domain.errors import ConcurrentUpdate, Conflict

T = TypeVar("T")
_MAX_TRIES = 25


async def with_cas_retry(
    session: AsyncSession, attempt: Callable[[], Awaitable[T]], *, what: str = "the environment"
) -> T:
    """Run `attempt` until its flush wins the compare-and-set on `what`."""
    for n in range(_MAX_TRIES):
        try:
            return await attempt()
        except StaleDataError:
            await session.rollback()
            await asyncio.sleep(random.uniform(0, 0.002 * (n + 1)))  # noqa: S311
    raise ConcurrentUpdate(f"{what} kept changing under this request; try again")


async def commit_or_conflict(session: AsyncSession) -> None:
    """Commit; a compare-and-set lost at the last moment is a 409 the caller retries."""
    try:
        await session.commit()
    except StaleDataError as exc:
        raise ConcurrentUpdate("the object changed under this request; try again") from exc


async def commit_unless_stale(session: AsyncSession) -> bool:
    """Commit; False (rolled back) when a compare-and-set lost: for writes not worth
    a retry."""
    try:
        await session.commit()
    except StaleDataError:
        await session.rollback()
        return False
    return True


async def flush_unique(session: AsyncSession, conflict: str) -> None:
    """Flush; a unique index that refuses the write (a lost race for a name) is a
    409 saying `conflict`."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
