"""Retrying a read-decide-write against the compare-and-set on `version`: the loser
of a race re-reads and decides again, so concurrent requests never see a 500."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from sandbay.domain.errors import ConcurrentUpdate

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
