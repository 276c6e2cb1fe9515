"""/v1/runners: the hosts environments run on (Swarm nodes, or this host alone),
and drain / activate (operator key only)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.requests import HTTPConnection

from sandbay.api.deps import PrincipalDep, SessionDep, get_platform
from sandbay.domain.runners import Availability, RunnerList, RunnerView
from sandbay.services.runners.service import RunnersService

router = APIRouter(prefix="/v1/runners", tags=["runners"])

RunnerRef = Annotated[
    str, Path(description="runner id (the Swarm node id) or hostname", max_length=255)
]


async def get_runners(connection: HTTPConnection) -> RunnersService:
    return get_platform(connection).runners


RunnersDep = Annotated[RunnersService, Depends(get_runners)]


@router.get("")
async def list_runners(
    session: SessionDep, principal: PrincipalDep, runners: RunnersDep
) -> RunnerList:
    """Every runner with its state (ready/down/unknown), availability
    (active/pause/drain), labels, resources and environment count. Pointed at a
    Swarm manager these are the Swarm's nodes; without Swarm mode, this host alone."""
    return await runners.list(session, principal)


@router.get("/{runner_id}")
async def get_runner(
    runner_id: RunnerRef, session: SessionDep, principal: PrincipalDep, runners: RunnersDep
) -> RunnerView:
    """One runner, by id or hostname."""
    return await runners.get(session, principal, runner_id)


@router.post("/{runner_id}/drain")
async def drain_runner(
    runner_id: RunnerRef, session: SessionDep, principal: PrincipalDep, runners: RunnersDep
) -> RunnerView:
    """Drain a Swarm node: it gets no new environments. 409 without Swarm mode."""
    return await runners.set_availability(session, principal, runner_id, Availability.DRAIN)


@router.post("/{runner_id}/activate")
async def activate_runner(
    runner_id: RunnerRef, session: SessionDep, principal: PrincipalDep, runners: RunnersDep
) -> RunnerView:
    """Make a drained or paused Swarm node take new environments again."""
    return await runners.set_availability(session, principal, runner_id, Availability.ACTIVE)
