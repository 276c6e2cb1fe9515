"""The environments capability as one object with its configuration bound: where
new environments go, which warm pools exist, the lifecycle's stop defaults, and the
sessions its reads open for themselves."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Environment, EnvironmentCreate, EnvironmentList
from sandbay.domain.keys import Principal
from sandbay.domain.pools import WarmPoolStatus
from sandbay.domain.states import EnvState
from sandbay.runtime.provider import RuntimeProvider
from sandbay.runtime.resources import Resizer
from sandbay.services.environments import adjust, made_pools, pools
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.records import (
    Placement,
    create_environment,
    environment_page,
    move_environment,
    read_environment,
)


@dataclass(frozen=True, slots=True)
class EnvironmentsService:
    lifecycle: Lifecycle
    provider: RuntimeProvider
    placement: Placement
    resources: Resizer | None = None

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.lifecycle.sessions

    async def read(self, principal: Principal, id_or_name: str) -> Environment:
        """One environment, in a short session of its own that is closed, never
        committed: a read changes nothing, and one query needs no request-long
        session set up and torn down around it."""
        async with self.sessions() as session:
            return await read_environment(session, principal, id_or_name)

    async def page(
        self,
        principal: Principal,
        *,
        states: list[EnvState] | None,
        labels: list[str] | None,
        limit: int,
        cursor: str | None,
    ) -> EnvironmentList:
        """One page of the native listing, read as `read` is."""
        async with self.sessions() as session:
            return await environment_page(
                session, principal, states=states, labels=labels, limit=limit, cursor=cursor
            )

    async def create(
        self, session: AsyncSession, principal: Principal, body: EnvironmentCreate
    ) -> Environment:
        """Check the runner can hold it (an engine call: the create answers 400 at
        once for an image or size the runner cannot serve), then record it."""
        return await create_environment(
            session, principal, body, provider=self.provider, placement=self.placement
        )

    async def move(
        self, session: AsyncSession, principal: Principal, id_or_name: str, runner: str | None
    ) -> Environment:
        """Another runner for an archived environment (many hosts)."""
        return await move_environment(
            session, principal, id_or_name, runner, placement=self.placement
        )

    async def pool_status(
        self, session: AsyncSession, principal: Principal
    ) -> list[WarmPoolStatus]:
        configured = await pools.status(
            session, principal, list(self.placement.warm_pools), self.placement.default_image
        )
        return configured + await made_pools.statuses(session, principal)

    async def resize(
        self,
        principal: Principal,
        id_or_name: str,
        *,
        cpu: float | None,
        memory_mb: int | None,
        disk_gb: int | None,
    ) -> Environment:
        """New CPU and memory limits, applied by the engine before they are recorded
        (live on a running environment); its own sessions, none held meanwhile."""
        return await adjust.resize(
            self.sessions, self.provider, self.resources, principal, id_or_name,
            cpu=cpu, memory_mb=memory_mb, disk_gb=disk_gb,
        )  # fmt: skip
