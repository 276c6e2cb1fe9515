"""Committed events, told to the other processes on one PostgreSQL (`LISTEN` /
`NOTIFY`): a runner on another host wakes at once for a create made through a
replica, and a replica's `wait` and event streams see the runner's changes at once,
instead of at their next poll. Like the in-process bus it feeds, only a hint: a lost
notification costs latency, never a result. SQLite has one process: nothing to do."""

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from sandbay.db.models import EventModel
from sandbay.db.session import AsyncSession, HookedSession

log = logging.getLogger(__name__)
CHANNEL = "sandbay_events"
#: This process: it skips its own notifications (its bus already had them).
ORIGIN = uuid.uuid4().hex
_PENDING = "sandbay.notify"
#: Ids per notification: a payload must stay under PostgreSQL's 8,000 bytes.
_IDS_PER_NOTE = 400
_RETRY_SECONDS = 1.0


def announce(session: AsyncSession, recorded: EventModel) -> None:
    """Tell the other processes about `recorded` when the transaction commits."""
    if session.get_bind().dialect.name == "postgresql":
        session.sync_session.info.setdefault(_PENDING, []).append(recorded)


@event.listens_for(HookedSession, "before_commit")
def _notify(session: Session) -> None:
    pending: list[EventModel] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the events get their ids (the commit would flush anyway)
    ids = [e.id for e in pending if e.id is not None]
    connection = session.connection()
    for start in range(0, len(ids), _IDS_PER_NOTE):
        payload = json.dumps({"o": ORIGIN, "i": ids[start : start + _IDS_PER_NOTE]})
        connection.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})


@event.listens_for(HookedSession, "after_soft_rollback")
def _drop(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)


def _dsn(url: str) -> str:
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(url: str, on_ids: Callable[[list[int]], Awaitable[None]]) -> None:
    """Hand `on_ids` the ids of events other processes commit, until cancelled;
    reconnects after a failure (what was missed meanwhile is not replayed)."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(_dsn(url), autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                async for note in conn.notifies():
                    payload = json.loads(note.payload)
                    if payload.get("o") != ORIGIN:
                        await on_ids([int(i) for i in payload.get("i", [])])
        except (psycopg.Error, OSError, ValueError) as exc:
            log.warning("event notifications: %s; listening again in %.0fs", exc, _RETRY_SECONDS)
            await asyncio.sleep(_RETRY_SECONDS)
