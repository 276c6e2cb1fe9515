"""Compares the engine with the database every few seconds: environments whose
container vanished, exited or runs when it should not are handed to the
reconciler; containers and volumes of this installation that belong to no live
environment (orphans, e.g. after a crash or a lost database row) are removed once
older than a grace period."""

import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.queries import environments as queries
from sandbay.domain.errors import EngineUnavailable
from sandbay.domain.runtime import ContainerInfo
from sandbay.domain.states import DesiredState, EnvState
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import PeriodicLoop
from sandbay.runtime.provider import RuntimeProvider

log = logging.getLogger(__name__)


class DriftScanner(PeriodicLoop):
    name = "drift"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        provider: RuntimeProvider,
        instance: str,
        runner_id: str,
        interval: float,
        orphan_grace: float,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._instance = instance
        self._runner_id = runner_id
        super().__init__(interval)
        self._grace = orphan_grace

    async def sweep(self) -> None:
        try:
            listed = await self._provider.list_containers(self._instance)
        except EngineUnavailable:
            return  # the engine's outage is logged once, where it is seen
        containers = {c.environment_id: c for c in listed}
        async with self._sessions() as session:
            rows = await queries.runner_environments(session, self._runner_id)
        known = {env_id for env_id, _, _ in rows}
        drifted = [
            env_id
            for env_id, state, desired in rows
            if self._drifted(state, desired, containers.get(env_id))
        ]
        if drifted:
            async with self._sessions() as session:
                await queries.mark_due(session, drifted, utcnow())
                await session.commit()
        await self._remove_orphans(containers, known)

    @staticmethod
    def _drifted(state: EnvState, desired: DesiredState, found: ContainerInfo | None) -> bool:
        running = found is not None and found.running
        if state is EnvState.RUNNING and desired is DesiredState.RUNNING:
            return not running
        return state is EnvState.STOPPED and running

    async def _remove_orphans(self, containers: dict[str, ContainerInfo], known: set[str]) -> None:
        now = time.time()
        candidates = {
            env_id
            for env_id, c in containers.items()
            if env_id not in known and now - (c.created or now) >= self._grace
        }
        volumes = [
            v
            for v in await self._provider.list_volumes(self._instance)
            if v.environment_id not in known and now - (v.created or now) >= self._grace
        ]
        if not candidates and not volumes:
            return
        # Re-check against the database: `known` only covers this runner's live rows.
        async with self._sessions() as session:
            live = await queries.live_ids(
                session, sorted(candidates | {v.environment_id for v in volumes})
            )
        for env_id in sorted(candidates - live):
            log.warning("removing orphan container of %s", env_id)
            await self._provider.remove(env_id)
        for vol in volumes:
            if vol.environment_id not in live:
                log.warning("removing orphan volume %s", vol.name)
                await self._provider.remove_volume(vol.name)
