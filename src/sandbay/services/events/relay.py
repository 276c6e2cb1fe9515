"""Events other processes commit, published on this process's bus (db/notify.py):
its reconciler wakes for work a replica on another host recorded, and its `wait`
callers and event streams see another host's changes as they happen."""

from sandbay.db import notify
from sandbay.db.queries import events as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Event
from sandbay.kit.loops import TaskLoop
from sandbay.services.events.bus import EventBus


class EventRelay(TaskLoop):
    name = "event-relay"

    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession], bus: EventBus) -> None:
        super().__init__()
        self._url = url
        self._sessions = sessions
        self._bus = bus

    async def _publish(self, ids: list[int]) -> None:
        async with self._sessions() as session:
            found = await queries.by_ids(session, ids)
        for recorded in found:
            self._bus.publish(Event.model_validate(recorded))

    async def _run(self) -> None:
        await notify.listen(self._url, self._publish)
