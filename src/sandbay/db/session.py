"""Sessions whose callbacks run only once their transaction commits, so nothing
outside the database (event streams, the reconciler's wake-up) ever sees a
change that was rolled back."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

#: `AsyncSession` and `async_sessionmaker` are re-exported: services name sessions
#: by them from here and import nothing of SQLAlchemy themselves (a contract).
__all__ = [
    "AsyncSession",
    "HookedSession",
    "InlineClosingSession",
    "after_commit",
    "async_sessionmaker",
    "create_sessionmaker",
]

_CALLBACKS = "sandbay.after_commit"


class HookedSession(Session):
    """A Session that runs `after_commit` callbacks."""


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    session.sync_session.info.setdefault(_CALLBACKS, []).append(callback)


@event.listens_for(HookedSession, "after_commit")
def _run_callbacks(session: Session) -> None:
    for callback in session.info.pop(_CALLBACKS, []):
        callback()


@event.listens_for(HookedSession, "after_soft_rollback")
def _drop_callbacks(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_CALLBACKS, None)


class InlineClosingSession(AsyncSession):
    """An AsyncSession that closes in place at the end of `async with`.

    SQLAlchemy closes in a task of its own behind `asyncio.shield` so that a
    cancelled caller cannot abandon the close half-way. That costs a pass through
    the event loop, and whatever became ready meanwhile runs first: after a
    commit, that is the reconciler this very commit woke, whose few milliseconds
    of database work then delay the HTTP answer. On the inline SQLite connection
    (`sqlite_inline`) close never yields, so nothing can interrupt it."""

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None, *, inline: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions never expire on commit (objects stay readable after the request
    commits) and carry `info` (the event bus) for services to reach. `inline`:
    the engine runs SQLite on the event loop (see `InlineClosingSession`)."""
    return async_sessionmaker(
        engine,
        class_=InlineClosingSession if inline else AsyncSession,
        expire_on_commit=False,
        info=info or {},
        sync_session_class=HookedSession,
    )
