"""Work-item leases on a real database: the TTL a heartbeat gets (clamped to the
LeaseLimits), what happens when a worker's lease runs out (`expire_lease`, per the
item's policy and attempt limit), who may hold a lease, and the live items of a
deleted environment (`stop_orphaned`)."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import EnvironmentModel, OrganizationModel, WorkItemModel
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict, PreconditionFailed
from sandbay.domain.keys import Principal
from sandbay.domain.work import (
    LeaseLimits,
    LeasePolicy,
    WorkItemCreate,
    WorkState,
    WorkStopRequest,
    format_heartbeat,
)
from sandbay.kit.clock import utcnow
from sandbay.services.work.items import create_work, get_work, work_events
from sandbay.services.work.protocol import expire_lease, stop, stop_orphaned
from sandbay.services.work.service import WorkService
from tests.support.records import Key, create_environment_record, create_work_item

pytestmark = pytest.mark.anyio

LIMITS = LeaseLimits(min_ttl=10, max_ttl=600, default_ttl=60)
REAPER = "reconciler"  # the actor the lease loop records


@pytest.fixture
def work(sessions: async_sessionmaker[AsyncSession]) -> WorkService:
    return WorkService(sessions, limits=LIMITS)


@pytest.fixture
def principal(owner: Key) -> Principal:
    return owner.principal


@pytest.fixture
async def env(session: AsyncSession, org: OrganizationModel) -> EnvironmentModel:
    return await create_environment_record(
        session, org=org, kind=EnvironmentKind.SELF_HOSTED, runner_id=None
    )


async def queue(
    session: AsyncSession, principal: Principal, env: EnvironmentModel, **fields: Any
) -> str:
    return (await create_work(session, principal, env.id, WorkItemCreate(**fields))).id


async def take(
    work: WorkService,
    session: AsyncSession,
    principal: Principal,
    env: EnvironmentModel,
    work_id: str,
    worker: str,
) -> str:
    """Ack and first heartbeat as `worker`; returns the lease token (last heartbeat)."""
    await work.ack(session, principal, env.id, work_id, worker_id=worker)
    beat = await work.heartbeat(
        session,
        principal,
        env.id,
        work_id,
        expected_last_heartbeat="NO_HEARTBEAT",
        desired_ttl_seconds=None,
        worker_id=worker,
    )
    assert beat.state is WorkState.ACTIVE
    return beat.last_heartbeat


async def lapse(session: AsyncSession, work_id: str) -> None:
    """The worker went quiet: its lease ran out a moment ago."""
    item = await session.get(WorkItemModel, work_id, populate_existing=True)
    assert item is not None and item.lease_expires_at is not None
    item.lease_expires_at = utcnow() - timedelta(seconds=1)
    await session.flush()


async def item_of(
    session: AsyncSession, principal: Principal, env: EnvironmentModel, work_id: str
) -> Any:
    return await get_work(session, principal, env.id, work_id)


async def transitions(
    session: AsyncSession, principal: Principal, env: EnvironmentModel, work_id: str
) -> list[tuple[str | None, str | None]]:
    page = await work_events(session, principal, env.id, work_id, after=None, limit=100)
    return [(e.from_state, e.to_state) for e in page.data if e.type == "work.state_changed"]


class TestHeartbeatTtl:
    @pytest.mark.parametrize(("desired", "applied"), [(None, 60), (1, 10), (45, 45), (10_000, 600)])
    async def test_a_heartbeat_ttl_is_clamped_to_the_limits(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
        desired: int | None,
        applied: int,
    ) -> None:
        work_id = await queue(session, principal, env)
        await work.ack(session, principal, env.id, work_id, worker_id="w-1")
        beat = await work.heartbeat(
            session,
            principal,
            env.id,
            work_id,
            expected_last_heartbeat=None,
            desired_ttl_seconds=desired,
            worker_id="w-1",
        )
        assert (beat.ttl_seconds, beat.state, beat.lease_extended) == (
            applied,
            WorkState.ACTIVE,
            True,
        )
        item = await item_of(session, principal, env, work_id)
        assert beat.last_heartbeat == format_heartbeat(item.latest_heartbeat_at)
        assert item.lease_expires_at == item.latest_heartbeat_at + timedelta(seconds=applied)

    async def test_ack_leases_the_item_for_the_default_ttl_until_the_first_heartbeat(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env)
        acked = await work.ack(session, principal, env.id, work_id, worker_id="w-1")
        assert (acked.state, acked.attempts, acked.worker_id) == (WorkState.STARTING, 1, "w-1")
        assert acked.lease_expires_at is not None and acked.latest_heartbeat_at is None
        row = await session.get(WorkItemModel, work_id)
        assert row is not None and row.lease_ttl_seconds == LIMITS.default_ttl


class TestLeaseExpiry:
    """What the lease loop does with an item whose worker stopped heartbeating."""

    async def test_expired_lease_requeues_until_the_attempt_limit_then_stops(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env, max_attempts=2)
        await take(work, session, principal, env, work_id, "w-1")
        await lapse(session, work_id)
        assert await expire_lease(session, work_id, actor=REAPER) is WorkState.QUEUED
        requeued = await item_of(session, principal, env, work_id)
        assert requeued.state == WorkState.QUEUED
        assert requeued.attempts == 1 and requeued.worker_id is None
        assert requeued.acknowledged_at is None and requeued.latest_heartbeat_at is None

        await take(work, session, principal, env, work_id, "w-2")
        await lapse(session, work_id)
        assert await expire_lease(session, work_id, actor=REAPER) is WorkState.STOPPED
        stopped = await item_of(session, principal, env, work_id)
        assert stopped.state == WorkState.STOPPED and stopped.attempts == 2
        assert stopped.stop_reason == "lease expired; attempt limit reached (2 of 2)"
        assert await transitions(session, principal, env, work_id) == [
            ("queued", "starting"),
            ("starting", "active"),
            ("active", "queued"),
            ("queued", "starting"),
            ("starting", "active"),
            ("active", "stopped"),
        ]

    async def test_expired_lease_stops_the_item_under_the_stop_policy(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env, on_lease_expired=LeasePolicy.STOP)
        await take(work, session, principal, env, work_id, "w-1")
        await lapse(session, work_id)
        assert await expire_lease(session, work_id, actor=REAPER) is WorkState.STOPPED
        stopped = await item_of(session, principal, env, work_id)
        assert stopped.stop_reason == "lease expired (policy: stop)" and stopped.attempts == 1

    async def test_acknowledged_item_without_heartbeat_loses_its_lease(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env)
        acked = await work.ack(session, principal, env.id, work_id, worker_id=None)
        assert acked.state == WorkState.STARTING and acked.lease_expires_at is not None
        await lapse(session, work_id)
        assert await expire_lease(session, work_id, actor=REAPER) is WorkState.QUEUED
        assert (await item_of(session, principal, env, work_id)).attempts == 1

    async def test_expired_lease_while_stopping_stops_the_item(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env)
        await take(work, session, principal, env, work_id, "w-1")
        stopping = await stop(session, principal, env.id, work_id, WorkStopRequest())
        assert stopping.state == WorkState.STOPPING
        await lapse(session, work_id)
        assert await expire_lease(session, work_id, actor=REAPER) is WorkState.STOPPED
        stopped = await item_of(session, principal, env, work_id)
        assert stopped.stop_reason == "lease expired while stopping"

    async def test_a_lease_that_has_not_run_out_is_left_alone(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env)
        await take(work, session, principal, env, work_id, "w-1")
        row = await session.get(WorkItemModel, work_id)
        assert row is not None
        version = row.version
        assert await expire_lease(session, work_id, actor=REAPER) is None
        await session.refresh(row)
        assert (row.state, row.version) == (WorkState.ACTIVE, version)

    async def test_an_item_without_a_lease_has_nothing_to_expire(
        self, session: AsyncSession, principal: Principal, env: EnvironmentModel
    ) -> None:
        queued = await create_work_item(session, env=env)
        assert await expire_lease(session, queued.id, actor=REAPER) is None
        assert await transitions(session, principal, env, queued.id) == []


class TestLeaseHolder:
    async def test_the_previous_holder_is_refused_once_another_worker_took_the_item(
        self,
        session: AsyncSession,
        work: WorkService,
        principal: Principal,
        env: EnvironmentModel,
    ) -> None:
        work_id = await queue(session, principal, env)
        old = await take(work, session, principal, env, work_id, "w-old")
        await lapse(session, work_id)
        assert await expire_lease(session, work_id, actor=REAPER) is WorkState.QUEUED
        await take(work, session, principal, env, work_id, "w-new")

        def beat(expected: str | None, worker: str | None) -> Any:
            return work.heartbeat(
                session,
                principal,
                env.id,
                work_id,
                expected_last_heartbeat=expected,
                desired_ttl_seconds=None,
                worker_id=worker,
            )

        for expected, worker in [(old, None), (None, "w-old"), ("NO_HEARTBEAT", None)]:
            with pytest.raises(PreconditionFailed) as stale:
                await beat(expected, worker)
            assert stale.value.status_code == 412
        with pytest.raises(Conflict) as taken:
            await work.ack(session, principal, env.id, work_id, worker_id="w-old")
        assert taken.value.status_code == 409
        assert (await item_of(session, principal, env, work_id)).worker_id == "w-new"


class TestOrphans:
    async def test_live_items_of_a_deleted_environment_are_stopped_and_stopped_ones_left(
        self, session: AsyncSession, principal: Principal, env: EnvironmentModel
    ) -> None:
        live = [
            await create_work_item(session, env=env, state=state)
            for state in (WorkState.QUEUED, WorkState.ACTIVE)
        ]
        done = await create_work_item(session, env=env, state=WorkState.STOPPED)
        for item in live:
            assert await stop_orphaned(session, item.id, actor=REAPER) is True
            stopped = await item_of(session, principal, env, item.id)
            assert stopped.state == WorkState.STOPPED
            assert stopped.stop_reason == "environment deleted"
        assert await stop_orphaned(session, done.id, actor=REAPER) is False
        assert await transitions(session, principal, env, done.id) == []
