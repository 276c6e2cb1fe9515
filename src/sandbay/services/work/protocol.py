"""The worker protocol (Qoder's work API): poll delivers a queued item, ack takes it
(queued → starting), heartbeats hold its lease (the first one: starting → active),
stop follows the brief's table, and a lease that runs out is handled per the
item's policy. Every state change goes through `transition_work`."""

import asyncio
import contextlib
import time
from collections import deque
from datetime import datetime, timedelta

from sandbay.db.models import EnvironmentModel, WorkItemModel
from sandbay.db.queries import work as queries
from sandbay.db.queries.work import work_item_from_model
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Event
from sandbay.domain.errors import Conflict, PreconditionFailed
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.work import (
    NO_HEARTBEAT,
    LeaseLimits,
    LeasePolicy,
    WorkHeartbeat,
    WorkItem,
    WorkState,
    WorkStopRequest,
    decide_ack,
    decide_heartbeat,
    decide_lease_expired,
    decide_stop,
    format_heartbeat,
    parse_expected_heartbeat,
)
from sandbay.kit.clock import utcnow
from sandbay.services.environments.activity import record_activity
from sandbay.services.work.items import (
    get_self_hosted,
    load_work,
    record_work_event,
    transition_work,
    with_retry,
)

#: A long poll re-checks the queue at least this often (other replicas' changes,
#: deliveries whose redelivery window has just passed).
_RECHECK_SECONDS = 1.0
_CANDIDATES = 8
_MICROSECOND = timedelta(microseconds=1)


# ---- poll ------------------------------------------------------------------------------


async def _claim_one(
    session: AsyncSession,
    env: EnvironmentModel,
    principal: Principal,
    *,
    worker_id: str | None,
    reclaim_ms: int,
) -> WorkItemModel | None:
    now = utcnow()
    cutoff = now - timedelta(milliseconds=reclaim_ms)
    for work_id in await queries.claimable_ids(session, env.id, cutoff=cutoff, limit=_CANDIDATES):
        if await queries.claim(session, work_id, cutoff=cutoff, worker_id=worker_id, now=now):
            item = await queries.get(session, env.id, work_id)
            if item is None:  # deleted between the claim and the read
                continue
            record_work_event(
                session,
                item,
                "work.delivered",
                actor=principal.actor,
                data={"worker_id": worker_id, "delivery": item.deliveries},
            )
            return item
    return None


async def poll(
    sessions: async_sessionmaker[AsyncSession],
    wakeups: "WorkWakeups",
    principal: Principal,
    env: str,
    *,
    worker_id: str | None,
    block_ms: int | None,
    reclaim_ms: int,
) -> WorkItem | None:
    """Deliver the oldest claimable item to this poller, waiting up to `block_ms` for
    one; None when there is none. Each attempt uses a short session of its own, so
    a long poll holds no database connection while it waits."""
    deadline = time.monotonic() + (block_ms or 0) / 1000
    async with sessions() as session:
        model = await get_self_hosted(session, principal, env, Permission.WORK_WRITE)
        if worker_id:
            await queries.touch_poller(session, model.id, worker_id, utcnow())
        await session.commit()
    while True:
        waiting = wakeups.register(model.id)  # before looking, so no wake-up is missed
        try:
            async with sessions() as session:
                item = await _claim_one(
                    session, model, principal, worker_id=worker_id, reclaim_ms=reclaim_ms
                )
                await session.commit()
            remaining = deadline - time.monotonic()
            if item is not None:
                return work_item_from_model(item)
            if remaining <= 0:
                return None
            await wakeups.wait(waiting, min(remaining, _RECHECK_SECONDS))
        finally:
            wakeups.unregister(model.id, waiting)


def _makes_claimable(event: Event) -> bool:
    if event.type == "work.created":
        return True
    return event.type == "work.state_changed" and event.to_state == WorkState.QUEUED


class WorkWakeups:
    """Wakes waiting long polls in this process: one poll per item that becomes
    claimable (queued or re-queued), oldest waiter first. Waking every poller of the
    environment for each item would stampede the database with claims only one can
    win. A poll also re-checks on its own every second (other replicas' changes,
    redelivery windows that ran out), so a lost wake-up costs latency, never work."""

    def __init__(self) -> None:
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    def register(self, environment_id: str) -> "asyncio.Future[None]":
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(environment_id, deque()).append(future)
        return future

    def unregister(self, environment_id: str, future: "asyncio.Future[None]") -> None:
        waiters = self._waiters.get(environment_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters:
                del self._waiters[environment_id]

    @staticmethod
    async def wait(future: "asyncio.Future[None]", timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout)

    def on_event(self, event: Event) -> None:
        if event.environment_id is None or not _makes_claimable(event):
            return
        for future in self._waiters.get(event.environment_id, ()):
            if not future.done():
                future.set_result(None)
                return


# ---- ack and heartbeat -------------------------------------------------------------------


async def ack(
    session: AsyncSession,
    principal: Principal,
    env: str,
    work_id: str,
    *,
    worker_id: str | None,
    limits: LeaseLimits,
) -> WorkItem:
    """queued → starting, with a lease until the first heartbeat. Safe to repeat while
    starting or active; 409 when stopping or stopped, or when the item was delivered
    to (or taken by) another Worker-ID."""

    async def attempt() -> WorkItemModel:
        item = await load_work(session, principal, env, work_id, Permission.WORK_WRITE)
        if worker_id and item.worker_id and item.worker_id != worker_id:
            raise Conflict(f"work item {item.id} is held by another worker")
        move = decide_ack(item.state)
        if move is None:
            return item
        ttl = limits.clamp(None)
        item.worker_id = worker_id or item.worker_id
        item.lease_ttl_seconds = ttl
        item.lease_expires_at = utcnow() + timedelta(seconds=ttl)
        transition_work(
            session,
            item,
            move,
            actor=principal.actor,
            reason="acknowledged",
            data={"worker_id": item.worker_id, "attempt": item.attempts + 1},
        )
        await record_activity(session, item.environment_id)
        await session.flush()
        return item

    return work_item_from_model(await with_retry(session, attempt))


def _check_lease_owner(
    item: WorkItemModel, expected: datetime | str | None, worker_id: str | None
) -> None:
    """412 when the caller's view of the lease is not the current one: another worker
    has heartbeated it since (or took it over after a re-queue)."""
    latest = item.latest_heartbeat_at
    if expected == NO_HEARTBEAT and latest is not None:
        raise PreconditionFailed(
            f"work item {item.id} was already heartbeated (last {format_heartbeat(latest)})"
        )
    if isinstance(expected, datetime) and (latest is None or latest != expected):
        shown = format_heartbeat(latest) if latest else NO_HEARTBEAT
        raise PreconditionFailed(f"work item {item.id}: last heartbeat is {shown}")
    if worker_id and item.worker_id and item.worker_id != worker_id:
        raise PreconditionFailed(f"work item {item.id} is held by another worker")


async def heartbeat(
    session: AsyncSession,
    principal: Principal,
    env: str,
    work_id: str,
    *,
    expected_last_heartbeat: str | None,
    desired_ttl_seconds: int | None,
    worker_id: str | None,
    limits: LeaseLimits,
) -> WorkHeartbeat:
    """Renew the lease (TTL clamped to the limits); the first heartbeat moves starting
    → active. 409 when queued or stopped; 412 when `expected_last_heartbeat` (or the
    Worker-ID) does not match the lease's current holder."""
    expected = parse_expected_heartbeat(expected_last_heartbeat)

    async def attempt() -> WorkHeartbeat:
        item = await load_work(session, principal, env, work_id, Permission.WORK_WRITE)
        move = decide_heartbeat(item.state)
        _check_lease_owner(item, expected, worker_id)
        ttl = limits.clamp(desired_ttl_seconds)
        now = utcnow()
        if item.latest_heartbeat_at is not None and now <= item.latest_heartbeat_at:
            now = item.latest_heartbeat_at + _MICROSECOND  # the timestamp is a lease token
        item.latest_heartbeat_at = now
        item.lease_ttl_seconds = ttl
        item.lease_expires_at = now + timedelta(seconds=ttl)
        item.updated_at = now
        if move is not None:
            transition_work(session, item, move, actor=principal.actor, reason="first heartbeat")
            await record_activity(session, item.environment_id)
        await session.flush()
        return WorkHeartbeat(
            last_heartbeat=format_heartbeat(now),
            lease_extended=True,
            state=item.state,
            ttl_seconds=ttl,
        )

    return await with_retry(session, attempt)


# ---- stop and lease expiry ----------------------------------------------------------------

_STOP_REASONS = {
    (WorkState.QUEUED, WorkState.STOPPED): "stopped before it was acknowledged",
    (WorkState.STARTING, WorkState.STOPPING): "graceful stop requested",
    (WorkState.ACTIVE, WorkState.STOPPING): "graceful stop requested",
    (WorkState.STOPPING, WorkState.STOPPED): "stop confirmed",
}


async def stop(
    session: AsyncSession, principal: Principal, env: str, work_id: str, body: WorkStopRequest
) -> WorkItem:
    """The brief's table: force=false moves queued → stopped, starting|active →
    stopping (the worker drains, then calls again) and stopping → stopped; force=true
    moves any live item to stopped; a stopped item is returned as it is."""

    async def attempt() -> WorkItemModel:
        item = await load_work(session, principal, env, work_id, Permission.WORK_WRITE)
        current = item.state
        target = decide_stop(current, force=body.force)
        if target is None:
            return item
        reason = "force stop" if body.force else _STOP_REASONS[(current, target)]
        transition_work(
            session,
            item,
            target,
            actor=principal.actor,
            reason=reason,
            data={"force": body.force},
        )
        await record_activity(session, item.environment_id)
        await session.flush()
        return item

    return work_item_from_model(await with_retry(session, attempt))


async def expire_lease(session: AsyncSession, work_id: str, *, actor: str) -> WorkState | None:
    """Apply the item's policy if its lease has run out: re-queue (within its attempt
    limit) or stop, with the reason recorded. Returns the new state, or None when the
    lease is not (or no longer) expired. A concurrent heartbeat wins the race via the
    compare-and-set on `version` (the caller sees StaleDataError and moves on)."""
    item = await session.get(WorkItemModel, work_id, populate_existing=True)
    now = utcnow()
    if item is None or item.lease_expires_at is None or item.lease_expires_at >= now:
        return None
    outcome = decide_lease_expired(
        item.state,
        LeasePolicy(item.on_lease_expired),
        attempts=item.attempts,
        max_attempts=item.max_attempts,
    )
    if outcome is None:
        return None
    target, reason = outcome
    transition_work(
        session,
        item,
        target,
        actor=actor,
        reason=reason,
        data={"worker_id": item.worker_id, "lease_expired_at": item.lease_expires_at.isoformat()},
    )
    await session.flush()
    return target


async def stop_orphaned(session: AsyncSession, work_id: str, *, actor: str) -> bool:
    """Stop a live item whose environment is being deleted: no worker may take it any
    more, and its current holder learns it on its next heartbeat (409)."""
    item = await session.get(WorkItemModel, work_id, populate_existing=True)
    if item is None or item.state is WorkState.STOPPED:
        return False
    transition_work(session, item, WorkState.STOPPED, actor=actor, reason="environment deleted")
    await session.flush()
    return True
