"""The environments capability as one object with its configuration bound: where
new environments go, which warm pools exist, the lifecycle's stop defaults."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession
from sandbay.domain.environments import Environment, EnvironmentCreate
from sandbay.domain.keys import Principal
from sandbay.domain.pools import WarmPoolSpec, WarmPoolStatus
from sandbay.runtime.provider import RuntimeProvider
from sandbay.services.environments import pools
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.records import Placement, create_environment


@dataclass(frozen=True, slots=True)
class EnvironmentsService:
    lifecycle: Lifecycle
    provider: RuntimeProvider
    placement: Placement
    warm_pools: tuple[WarmPoolSpec, ...] = ()

    async def create(
        self, session: AsyncSession, principal: Principal, body: EnvironmentCreate
    ) -> Environment:
        """Check the runner can hold it (an engine call: the create answers 400 at
        once for an image or size the runner cannot serve), then record it."""
        return await create_environment(
            session, principal, body, provider=self.provider, placement=self.placement
        )

    async def pool_status(
        self, session: AsyncSession, principal: Principal
    ) -> list[WarmPoolStatus]:
        return await pools.status(
            session, principal, list(self.warm_pools), self.placement.default_image
        )
