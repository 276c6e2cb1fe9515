"""The events capability as one object: live streams of the audit log, bound to
this process's bus and sessions (a stream holds no connection while it waits)."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.keys import Principal
from sandbay.services.events import stream
from sandbay.services.events.bus import EventBus
from sandbay.services.events.stream import EventFollow


@dataclass(frozen=True, slots=True)
class EventsService:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus

    async def follow(
        self, principal: Principal, *, environment: str | None, after: int | None
    ) -> EventFollow:
        return await stream.follow_events(
            self.sessions, self.bus, principal, environment=environment, after=after
        )
