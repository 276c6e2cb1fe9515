"""Sessions whose callbacks run only once their transaction commits, so nothing
outside the database (event streams, the reconciler's wake-up) ever sees a
change that was rolled back."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

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


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions never expire on commit (objects stay readable after the request
    commits) and carry `info` (the event bus) for services to reach."""
    return async_sessionmaker(
        engine, expire_on_commit=False, info=info or {}, sync_session_class=HookedSession
    )
