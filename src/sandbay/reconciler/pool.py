"""Keeps each warm pool (configured, or made through the API) at its size: creates
fresh members (the reconciler builds them like any environment), replaces members
that failed, and hands them out only through the claim in
`services.environments.pools`, so any process may claim what this one warmed."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import pools as queries
from sandbay.domain.environments import Event
from sandbay.domain.pools import WarmPoolSpec
from sandbay.domain.states import DesiredState, EnvState
from sandbay.kit.loops import PeriodicLoop
from sandbay.services.environments import made_pools, pools
from sandbay.services.environments.records import Placement
from sandbay.services.environments.transitions import transition
from sandbay.services.events.record import record_environment_event

log = logging.getLogger(__name__)
ACTOR = "system:warm-pool"


class PoolLoop(PeriodicLoop):
    name = "warm-pool"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        specs: list[WarmPoolSpec],
        placement: Placement,
        interval: float,
    ) -> None:
        self._sessions = sessions
        self._specs = [s for s in specs if s.size > 0]
        self._placement = placement
        super().__init__(interval)

    def on_event(self, event: Event) -> None:
        if event.data.get("pool"):
            self.wake()

    def enabled(self) -> bool:
        return True  # pools may be made through the API at any time

    async def sweep(self) -> None:
        async with self._sessions() as session:
            for spec in self._specs:
                resolved = await pools.resolve(session, spec, self._placement.default_image)
                if resolved is None:
                    continue
                org_id, key = resolved
                await self._refill(session, spec, org_id, key)
            for org_id, key, spec in await made_pools.pools_to_fill(session):
                await self._refill(session, spec, org_id, key)
            await session.commit()

    async def _retire(self, session: AsyncSession, env_id: str, reason: str) -> None:
        env = await session.get(EnvironmentModel, env_id)
        if env is not None:
            transition(
                session, env, EnvState.DELETING, actor=ACTOR, reason=reason,
                desired=DesiredState.DELETED,
            )  # fmt: skip

    async def _refill(
        self, session: AsyncSession, spec: WarmPoolSpec, org_id: str, key: str
    ) -> None:
        live = []
        for env_id, state in await queries.pool_members(session, key):
            if state is EnvState.ERROR:
                # A member that failed is replaced, never repaired and handed out.
                await self._retire(session, env_id, "failed pool member")
            elif state not in (EnvState.DELETING, EnvState.DELETED):
                live.append(env_id)
        # Several replicas may refill at once: trim the newest extras.
        for env_id in sorted(live)[spec.size :]:
            await self._retire(session, env_id, "pool above its size")
        image = spec.image or self._placement.default_image
        for _ in range(spec.size - len(live)):
            member = pools.new_member(org_id, key, spec, image, self._placement.runner_id)
            session.add(member)
            record_environment_event(
                session, member, "environment.pool_member_created", actor=ACTOR, data={"pool": key}
            )
