"""Work-item leases on a real database: the TTL a heartbeat gets (clamped to the
LeaseLimits), what happens when a worker's lease runs out (`expire_lease`, per the
item's policy and attempt limit), who may hold a lease, and the live items of a
deleted environment (`stop_orphaned`)."""

from dataclasses import dataclass
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
    WorkHeartbeat,
    WorkItem,
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


@dataclass
class Items:
    """The work items of one self-hosted environment, on the test's session: queued by
    its owner, taken by workers (`WorkService` with LIMITS), expired by the lease loop."""

    session: AsyncSession
    work: WorkService
    principal: Principal
    env: EnvironmentModel

    async def queue(self, **fields: Any) -> str:
        item = await create_work(
            self.session, self.principal, self.env.id, WorkItemCreate(**fields)
        )
        return item.id

    async def ack(self, work_id: str, worker: str | None) -> WorkItem:
        return await self.work.ack(
            self.session, self.principal, self.env.id, work_id, worker_id=worker
        )

    async def heartbeat(
        self, work_id: str, expected: str | None, worker: str | None, ttl: int | None = None
    ) -> WorkHeartbeat:
        return await self.work.heartbeat(
            self.session,
            self.principal,
            self.env.id,
            work_id,
            expected_last_heartbeat=expected,
            desired_ttl_seconds=ttl,
            worker_id=worker,
        )

    async def take(self, work_id: str, worker: str) -> str:
        """Ack and first heartbeat as `worker`; returns the lease token (last heartbeat)."""
        await self.ack(work_id, worker)
        beat = await self.heartbeat(work_id, "NO_HEARTBEAT", worker)
        assert beat.state is WorkState.ACTIVE
        return beat.last_heartbeat

    async def lapse(self, work_id: str) -> None:
        """The worker went quiet: its lease ran out a moment ago."""
        item = await self.session.get(WorkItemModel, work_id, populate_existing=True)
        assert item is not None and item.lease_expires_at is not None
        item.lease_expires_at = utcnow() - timedelta(seconds=1)
        await self.session.flush()

    async def expire(self, work_id: str) -> WorkState | None:
        """What the lease loop makes of the item now."""
        return await expire_lease(self.session, work_id, actor=REAPER)

    async def abandon(self, work_id: str, worker: str) -> WorkState | None:
        """`worker` takes the item, then goes quiet until its lease runs out, and the
        lease loop comes by."""
        await self.take(work_id, worker)
        await self.lapse(work_id)
        return await self.expire(work_id)

    async def get(self, work_id: str) -> Any:
        return await get_work(self.session, self.principal, self.env.id, work_id)

    async def transitions(self, work_id: str) -> list[tuple[str | None, str | None]]:
        page = await work_events(
            self.session, self.principal, self.env.id, work_id, after=None, limit=100
        )
        return [(e.from_state, e.to_state) for e in page.data if e.type == "work.state_changed"]


@pytest.fixture
async def items(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    org: OrganizationModel,
    owner: Key,
) -> Items:
    env = await create_environment_record(
        session, org=org, kind=EnvironmentKind.SELF_HOSTED, runner_id=None
    )
    return Items(session, WorkService(sessions, limits=LIMITS), owner.principal, env)


class TestHeartbeatTtl:
    @pytest.mark.parametrize(("desired", "applied"), [(None, 60), (1, 10), (45, 45), (10_000, 600)])
    async def test_a_heartbeat_ttl_is_clamped_to_the_limits(
        self, items: Items, desired: int | None, applied: int
    ) -> None:
        work_id = await items.queue()
        await items.ack(work_id, "w-1")
        beat = await items.heartbeat(work_id, None, "w-1", ttl=desired)
        assert (beat.ttl_seconds, beat.state, beat.lease_extended) == (
            applied,
            WorkState.ACTIVE,
            True,
        )
        item = await items.get(work_id)
        assert beat.last_heartbeat == format_heartbeat(item.latest_heartbeat_at)
        assert item.lease_expires_at == item.latest_heartbeat_at + timedelta(seconds=applied)

    async def test_ack_leases_the_item_for_the_default_ttl_until_the_first_heartbeat(
        self, items: Items
    ) -> None:
        work_id = await items.queue()
        acked = await items.ack(work_id, "w-1")
        assert (acked.state, acked.attempts, acked.worker_id) == (WorkState.STARTING, 1, "w-1")
        assert acked.lease_expires_at is not None and acked.latest_heartbeat_at is None
        row = await items.session.get(WorkItemModel, work_id)
        assert row is not None and row.lease_ttl_seconds == LIMITS.default_ttl


class TestLeaseExpiry:
    """What the lease loop does with an item whose worker stopped heartbeating."""

    async def test_expired_lease_requeues_until_the_attempt_limit_then_stops(
        self, items: Items
    ) -> None:
        work_id = await items.queue(max_attempts=2)
        assert await items.abandon(work_id, "w-1") is WorkState.QUEUED
        requeued = await items.get(work_id)
        assert requeued.state == WorkState.QUEUED
        assert requeued.attempts == 1 and requeued.worker_id is None
        assert requeued.acknowledged_at is None and requeued.latest_heartbeat_at is None

        assert await items.abandon(work_id, "w-2") is WorkState.STOPPED
        stopped = await items.get(work_id)
        assert stopped.state == WorkState.STOPPED and stopped.attempts == 2
        assert stopped.stop_reason == "lease expired; attempt limit reached (2 of 2)"
        assert await items.transitions(work_id) == [
            ("queued", "starting"),
            ("starting", "active"),
            ("active", "queued"),
            ("queued", "starting"),
            ("starting", "active"),
            ("active", "stopped"),
        ]

    async def test_expired_lease_stops_the_item_under_the_stop_policy(self, items: Items) -> None:
        work_id = await items.queue(on_lease_expired=LeasePolicy.STOP)
        assert await items.abandon(work_id, "w-1") is WorkState.STOPPED
        stopped = await items.get(work_id)
        assert stopped.stop_reason == "lease expired (policy: stop)" and stopped.attempts == 1

    async def test_acknowledged_item_without_heartbeat_loses_its_lease(self, items: Items) -> None:
        work_id = await items.queue()
        acked = await items.ack(work_id, None)
        assert acked.state == WorkState.STARTING and acked.lease_expires_at is not None
        await items.lapse(work_id)
        assert await items.expire(work_id) is WorkState.QUEUED
        assert (await items.get(work_id)).attempts == 1

    async def test_expired_lease_while_stopping_stops_the_item(self, items: Items) -> None:
        work_id = await items.queue()
        await items.take(work_id, "w-1")
        stopping = await stop(
            items.session, items.principal, items.env.id, work_id, WorkStopRequest()
        )
        assert stopping.state == WorkState.STOPPING
        await items.lapse(work_id)
        assert await items.expire(work_id) is WorkState.STOPPED
        assert (await items.get(work_id)).stop_reason == "lease expired while stopping"

    async def test_a_lease_that_has_not_run_out_is_left_alone(self, items: Items) -> None:
        work_id = await items.queue()
        await items.take(work_id, "w-1")
        row = await items.session.get(WorkItemModel, work_id)
        assert row is not None
        version = row.version
        assert await items.expire(work_id) is None
        await items.session.refresh(row)
        assert (row.state, row.version) == (WorkState.ACTIVE, version)

    async def test_an_item_without_a_lease_has_nothing_to_expire(self, items: Items) -> None:
        queued = await create_work_item(items.session, env=items.env)
        assert await items.expire(queued.id) is None
        assert await items.transitions(queued.id) == []


class TestLeaseHolder:
    async def test_the_previous_holder_is_refused_once_another_worker_took_the_item(
        self, items: Items
    ) -> None:
        work_id = await items.queue()
        old = await items.take(work_id, "w-old")
        await items.lapse(work_id)
        assert await items.expire(work_id) is WorkState.QUEUED
        await items.take(work_id, "w-new")
        for expected, worker in [(old, None), (None, "w-old"), ("NO_HEARTBEAT", None)]:
            with pytest.raises(PreconditionFailed) as stale:
                await items.heartbeat(work_id, expected, worker)
            assert stale.value.status_code == 412
        with pytest.raises(Conflict) as taken:
            await items.ack(work_id, "w-old")
        assert taken.value.status_code == 409
        assert (await items.get(work_id)).worker_id == "w-new"


class TestOrphans:
    async def test_live_items_of_a_deleted_environment_are_stopped_and_stopped_ones_left(
        self, items: Items
    ) -> None:
        live = [
            await create_work_item(items.session, env=items.env, state=state)
            for state in (WorkState.QUEUED, WorkState.ACTIVE)
        ]
        done = await create_work_item(items.session, env=items.env, state=WorkState.STOPPED)
        for item in live:
            assert await stop_orphaned(items.session, item.id, actor=REAPER) is True
            stopped = await items.get(item.id)
            assert stopped.state == WorkState.STOPPED
            assert stopped.stop_reason == "environment deleted"
        assert await stop_orphaned(items.session, done.id, actor=REAPER) is False
        assert await items.transitions(done.id) == []
