"""Runners as the operator sees them: the hosts behind the engine (Swarm nodes, or
this host alone), each with how many environments it holds, and drain / activate.
Operator key only: runners are the installation's, not an organization's.

An environment's `runner_id` is the runner's id (the Swarm node id). Environments
placed before the host joined a Swarm carry the host's name (the default
`runner_id`), so a node also counts those whose `runner_id` is its hostname."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sandbay.db.queries import runners as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.errors import PermissionDenied
from sandbay.domain.keys import Principal
from sandbay.domain.runners import Availability, Runner, RunnerList, RunnerView


class RunnerSource(Protocol):
    """Where runners come from (the Docker engine: `runtime/docker/swarm.py`)."""

    async def runners(self) -> list[Runner]: ...

    async def runner(self, ref: str) -> Runner: ...

    async def set_availability(self, ref: str, availability: Availability) -> Runner: ...


def _operator(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("runners need the operator (admin) key")


def _count(runner: Runner, counts: dict[str, int]) -> int:
    by_name = counts.get(runner.hostname, 0) if runner.hostname != runner.id else 0
    return counts.get(runner.id, 0) + by_name


@dataclass
class RunnersService:
    source: RunnerSource

    async def _views(self, session: AsyncSession, runners: Sequence[Runner]) -> list[RunnerView]:
        counts = await queries.environments_by_runner(session)
        return [RunnerView.of(runner, _count(runner, counts)) for runner in runners]

    async def list(self, session: AsyncSession, principal: Principal) -> RunnerList:
        _operator(principal)
        runners = await self.source.runners()
        views = await self._views(session, runners)
        return RunnerList(data=views, swarm=any(runner.swarm for runner in runners))

    async def get(self, session: AsyncSession, principal: Principal, ref: str) -> RunnerView:
        _operator(principal)
        return (await self._views(session, [await self.source.runner(ref)]))[0]

    async def set_availability(
        self, session: AsyncSession, principal: Principal, ref: str, availability: Availability
    ) -> RunnerView:
        """Drain (no new environments), pause or activate a Swarm node."""
        _operator(principal)
        runner = await self.source.set_availability(ref, availability)
        return (await self._views(session, [runner]))[0]
