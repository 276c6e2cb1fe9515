"""Warm pools: a matching create takes a ready member (a compare-and-set, so one
member serves one create, also when two creates race for it); a member still
warming is not handed out."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import EnvironmentModel, OrganizationModel
from sandbay.domain.environments import EnvironmentCreate
from sandbay.domain.pools import claim_key
from sandbay.domain.states import DesiredState, EnvState
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.events.audit import environment_events
from sandbay.services.events.bus import EventBus
from tests.support.db import race
from tests.support.records import Key, create_environment_record, create_key, create_org
from tests.support.services import IMAGE, environments_service

pytestmark = pytest.mark.anyio

SHAPE = EnvironmentCreate(memory_mb=256, cpu=0.5)


@pytest.fixture
def pooled(lifecycle: Lifecycle, provider: DockerProvider) -> EnvironmentsService:
    return environments_service(lifecycle, provider, warm_pools=True)


async def member(
    session: AsyncSession, org: OrganizationModel, *, state: EnvState = EnvState.RUNNING
) -> EnvironmentModel:
    """A pool member of SHAPE for `org`, found in `state`."""
    return await create_environment_record(
        session,
        org=org,
        state=state,
        desired=DesiredState.RUNNING,
        cpu=SHAPE.cpu,
        memory_mb=SHAPE.memory_mb,
        disk_gb=SHAPE.disk_gb,
        pids_limit=SHAPE.pids_limit,
        pool_key=claim_key(org.id, IMAGE, SHAPE),
    )


async def test_a_ready_member_serves_one_create(
    session: AsyncSession, pooled: EnvironmentsService, org: OrganizationModel, owner: Key
) -> None:
    ready = await member(session, org)
    body = SHAPE.model_copy(update={"name": "warm-one", "labels": {"k": "v"}, "env": {"A": "1"}})
    env = await pooled.create(session, owner.principal, body)
    assert (env.id, env.state) == (ready.id, EnvState.RUNNING)  # at once, from the pool
    assert (env.name, env.labels, env.env) == ("warm-one", {"k": "v"}, {"A": "1"})
    page = await environment_events(session, owner.principal, env.id, after=None, limit=10)
    assert page.data[-1].type == "environment.created" and page.data[-1].data["pool"]

    again = await pooled.create(session, owner.principal, SHAPE)
    assert again.id != ready.id and again.state == EnvState.CREATING  # the pool is empty


async def test_a_member_still_warming_is_not_handed_out(
    session: AsyncSession, pooled: EnvironmentsService, org: OrganizationModel, owner: Key
) -> None:
    warming = await member(session, org, state=EnvState.STARTING)
    env = await pooled.create(session, owner.principal, SHAPE)
    assert env.id != warming.id and env.state == EnvState.CREATING


async def test_another_organizations_create_never_gets_the_member(
    session: AsyncSession, pooled: EnvironmentsService, org: OrganizationModel
) -> None:
    ready = await member(session, org)
    stranger = await create_key(session, org=await create_org(session))
    env = await pooled.create(session, stranger.principal, SHAPE)
    assert env.id != ready.id and env.state == EnvState.CREATING


async def test_two_creates_racing_for_the_last_member_get_one_each_way(
    committed_sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
    provider: DockerProvider,
) -> None:
    async with committed_sessions() as session:
        org = await create_org(session)
        principal = (await create_key(session, org=org)).principal
        ready = await member(session, org)
        await session.commit()
    lifecycle = Lifecycle(committed_sessions, bus, stop_timeout=10)
    environments = environments_service(lifecycle, provider, warm_pools=True)
    raced = await race(
        committed_sessions,
        winner=lambda s: environments.create(s, principal, SHAPE),
        loser=lambda s: environments.create(s, principal, SHAPE),
    )
    assert not isinstance(raced.loser, Exception)
    assert (raced.winner.id, raced.winner.state) == (ready.id, EnvState.RUNNING)
    assert raced.loser.id != ready.id and raced.loser.state == EnvState.CREATING
