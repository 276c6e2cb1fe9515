"""The loop that follows the Swarm's view of its nodes (services/runners/watch.py):
on a control plane with many runners, every few seconds."""

import logging

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.errors import EngineUnavailable
from sandbay.domain.runners import RunnerState
from sandbay.kit.loops import PeriodicLoop
from sandbay.services.runners.service import RunnerSource
from sandbay.services.runners.watch import mark_runners

log = logging.getLogger(__name__)


class RunnerWatch(PeriodicLoop):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], runners: RunnerSource, interval: float
    ) -> None:
        super().__init__(interval)
        self._sessions = sessions
        self._runners = runners

    async def sweep(self) -> None:
        try:
            runners = await self._runners.runners()
        except EngineUnavailable:
            return  # this replica's own engine is away: it cannot judge the others
        down = [r.id for r in runners if r.state is not RunnerState.READY]
        ready = [r.id for r in runners if r.state is RunnerState.READY]
        async with self._sessions() as session:
            changed = await mark_runners(session, down, ready)
            await session.commit()
        if changed:
            log.info("runners: %d environments changed reachability (down: %s)", changed, down)
