"""Placing a new environment on a Swarm node: the nodes as the Swarm reports them,
with what sandbay already placed on each (environments running or meant to run),
judged by `domain.placement`. Every replica places from the same two sources, so
replicas need no placement state of their own."""

from collections.abc import Collection
from dataclasses import replace

from sandbay.db.queries import runners as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.errors import Conflict, RunnerUnreachable
from sandbay.domain.placement import Availability, Demand, Node, NodeState, place
from sandbay.domain.runners import Runner, find_runner
from sandbay.services.runners.service import RunnerSource


def _node(runner: Runner, reserved: tuple[float, int, int]) -> Node:
    cpus, memory, count = reserved
    return Node(
        id=runner.id,
        hostname=runner.hostname,
        state=NodeState(runner.state.value),
        availability=Availability(runner.availability.value),
        cpus=runner.nano_cpus / 1e9,
        memory_bytes=runner.memory_bytes,
        labels=runner.labels,
        reserved_cpus=cpus,
        reserved_memory_bytes=memory,
        environments=count,
    )


class SwarmPlacer:
    """`Cluster` over the runners of a Swarm."""

    def __init__(self, runners: RunnerSource) -> None:
        self._runners = runners

    async def place(
        self, session: AsyncSession, demand: Demand, *, exclude: Collection[str] = ()
    ) -> str:
        runners = [r for r in await self._runners.runners() if r.id not in exclude]
        if demand.pinned is not None:
            demand = replace(demand, pinned=find_runner(runners, demand.pinned).id)
        reserved = await queries.reservations(session)
        nodes = [_node(r, reserved.get(r.id, (0.0, 0, 0))) for r in runners]
        # Which images a worker holds is not in the Swarm's answer: a node without the
        # image fails the create there (ImageMissing), so operators load every image
        # on every node, or point the engines at a registry (docs/scaling.md).
        decision = place(demand, nodes, image_must_be_present=False)
        if decision.node_id is not None:
            return decision.node_id
        if decision.unreachable:
            # A node that may come back might take it: retry later, not change the ask.
            raise RunnerUnreachable(f"no runner can take it now: {decision.message}")
        raise Conflict(f"no runner can take it: {decision.message}")
