"""The metrics collector: every `interval` seconds it samples this installation's
running containers from the engine (outside any transaction), turns counters into
rates against the previous sweep, and stores the sweep in one short transaction.
Sampling is not activity: it never touches `last_activity_at`."""

import logging
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.domain.errors import EngineUnavailable
from sandbay.domain.metrics import ContainerSample, new_oom_kills, to_metrics
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import PeriodicLoop
from sandbay.runtime.inside import MetricsSource
from sandbay.services.events.oom import record_oom_kills
from sandbay.services.inside import metrics as service

log = logging.getLogger(__name__)
_PRUNE_EVERY_S = 60.0


class MetricsCollector(PeriodicLoop):
    name = "metrics"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        source: MetricsSource,
        instance: str,
        interval: float,
        retention: timedelta,
    ) -> None:
        self._sessions = sessions
        self._source = source
        self._instance = instance
        super().__init__(interval)
        self._retention = retention
        self._previous: dict[str, ContainerSample] = {}
        self._pruned_at = 0.0
        self._since = utcnow()  # OOM kills of containers started before are not ours
        #: CPU seconds this process spent in the last sweep (all threads), and its
        #: wall time: what an operator (and the benchmark) reads to see the cost.
        self.last_cpu_seconds = 0.0
        self.last_wall_seconds = 0.0
        self.sweeps = 0

    async def sweep(self) -> int:
        try:
            return await self.collect()
        except EngineUnavailable:
            return 0  # no samples while the engine is away; its outage is logged once

    async def collect(self) -> int:
        """One sweep; returns how many environments were written."""
        cpu0, wall0 = time.process_time(), time.monotonic()
        samples = await self._source.sample(self._instance)
        current = {s.environment_id: s for s in samples if s.environment_id}
        metrics = {eid: to_metrics(s, self._previous.get(eid)) for eid, s in current.items()}
        oom = {
            eid: n
            for eid, s in current.items()
            if (n := new_oom_kills(s, self._previous.get(eid), watching_since=self._since))
        }
        oom_exits = self._source.take_oom_exits()
        self._previous = current
        now = utcnow()
        async with self._sessions() as session:
            written = await service.record_samples(session, metrics, at=now)
            if oom or oom_exits:
                await record_oom_kills(session, oom, oom_exits)
            if time.monotonic() - self._pruned_at > _PRUNE_EVERY_S:
                await service.prune_history(session, before=now - self._retention)
                self._pruned_at = time.monotonic()
            await session.commit()
        self.last_cpu_seconds = time.process_time() - cpu0
        self.last_wall_seconds = time.monotonic() - wall0
        self.sweeps += 1
        log.debug(
            "metrics: %d sampled, %d written in %.1f ms (process CPU %.1f ms)",
            len(current),
            written,
            self.last_wall_seconds * 1000,
            self.last_cpu_seconds * 1000,
        )
        return written
