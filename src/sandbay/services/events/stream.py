"""Live event streams (`?follow=true`): what the database holds after the cursor,
then each new event as it commits. The bus only says "look again"; every delivery
is read from the database, so a missed notification (or another replica's write)
costs latency, never an event. Resumable from any event id without gaps."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sandbay.db.models import EventModel
from sandbay.db.queries import events as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Event
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.states import EnvState
from sandbay.services.environments.records import get_environment
from sandbay.services.events.bus import EventBus, Subscription
from sandbay.services.tenancy.auth import require

_BATCH = 500
_POLL_S = 2.0  # re-read at least this often (writes by other replicas)
#: Ids are assigned before commit, so on PostgreSQL a transaction may commit an id
#: lower than one already seen. Ids seen within this window are re-read (and skipped
#: if delivered), so such a late commit is still delivered. (SQLite, with one writer
#: at a time, commits in id order.)
_SETTLE_S = 2.0


@dataclass
class _Cursor:
    """Everything ≤ `floor` is delivered; ids above it that were delivered are
    remembered (with when) until they are older than the settle window."""

    floor: int
    seen: dict[int, float] = field(default_factory=dict)

    def fresh(self, rows: list[EventModel]) -> list[EventModel]:
        now = time.monotonic()
        out = [r for r in rows if r.id not in self.seen]
        for row in out:
            self.seen[row.id] = now
        return out

    def settle(self) -> None:
        horizon = time.monotonic() - _SETTLE_S
        old = [i for i, at in self.seen.items() if at <= horizon]
        if old:
            self.floor = max(self.floor, *old)
            self.seen = {i: at for i, at in self.seen.items() if i > self.floor}


@dataclass
class EventFollow:
    """A resolved stream: iterate `events()` for Event (or None: idle, send a ping)."""

    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    org_id: str
    environment_id: str | None
    cursor: _Cursor
    #: The caller key's environment limit: an organization stream of a limited key
    #: carries only those environments' events.
    only_environments: frozenset[str] | None = None

    async def _read(self) -> list[EventModel]:
        async with self.sessions() as session:
            return await queries.page(
                session,
                self.org_id,
                environment_id=self.environment_id,
                after=self.cursor.floor,
                limit=_BATCH,
                only_environments=self.only_environments,
            )

    async def events(self) -> AsyncIterator[Event | None]:
        with self.bus.subscribe(org_id=self.org_id, environment_id=self.environment_id) as sub:
            while True:
                self.cursor.settle()
                rows = self.cursor.fresh(await self._read())
                for row in rows:
                    event = Event.model_validate(row)
                    yield event
                    if self.environment_id and event.to_state == EnvState.DELETED:
                        return  # nothing more will happen to it
                if len(rows) >= _BATCH:
                    continue
                if not await _woken(sub):
                    yield None


async def _woken(sub: Subscription) -> bool:
    """Wait for a notification (True) or the poll period (False); drain the rest."""
    got = await sub.next(_POLL_S)
    while not sub.queue.empty():
        sub.queue.get_nowait()
    return got is not None


async def follow_events(
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
    principal: Principal,
    *,
    environment: str | None,
    after: int | None,
) -> EventFollow:
    """Resolve (404/403 before anything streams) and place the cursor: after `after`
    (a resumed stream), else at the newest event (only what happens from now on)."""
    async with sessions() as session:
        if environment is None:
            org_id, env_id = require(principal, Permission.ENVIRONMENTS_READ), None
        else:
            env = await get_environment(session, principal, environment, include_deleted=True)
            org_id, env_id = env.org_id, env.id
        floor = after if after is not None else await queries.latest_id(session)
    return EventFollow(
        sessions, bus, org_id, env_id, _Cursor(floor), only_environments=principal.environment_ids
    )
