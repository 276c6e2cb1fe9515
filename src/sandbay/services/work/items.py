"""Work items as records: queue (create), read, list, metadata, stats, audit log, and
`transition_work`, the one door through which a work item's state changes (checks
the table, sets the state and its timestamps, records the event). The worker
protocol (poll, ack, heartbeat, stop, lease expiry) is in `services.work_protocol`."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from sandbay.db.cas import with_cas_retry
from sandbay.db.models import EnvironmentModel, EventModel, WorkItemModel
from sandbay.db.queries import work as queries
from sandbay.db.queries.work import work_item_from_model
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.environments import EnvironmentKind, EventList
from sandbay.domain.errors import InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.work import (
    WorkItem,
    WorkItemCreate,
    WorkMetadataUpdate,
    WorkState,
    WorkStats,
    check_transition,
)
from sandbay.kit.clock import stamp, utcnow
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.records import get_environment
from sandbay.services.events.audit import page as events_page
from sandbay.services.events.record import record_event

T = TypeVar("T")
#: Poll's default redelivery window (Qoder: reclaim_older_than_ms defaults to 5000).
DEFAULT_RECLAIM_MS = 5000
#: A Worker-ID counts as polling if it polled within this window.
POLLERS_WINDOW = timedelta(seconds=30)


async def with_retry(session: AsyncSession, attempt: Callable[[], Awaitable[T]]) -> T:
    """`with_cas_retry` for work items."""
    return await with_cas_retry(session, attempt, what="the work item")


# ---- the one door ----------------------------------------------------------------------


def record_work_event(
    session: AsyncSession,
    item: WorkItemModel,
    type: str,
    *,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    came_from: WorkState | None = None,
) -> EventModel:
    """An action on a work item that does not change its state, or (`came_from` the
    state it left) the move it just made."""
    left = item.state if came_from is None else came_from
    return record_event(
        session,
        org_id=item.org_id,
        environment_id=item.environment_id,
        type=type,
        actor=actor,
        from_state=left.value,
        to_state=item.state.value,
        reason=reason,
        data={"work_id": item.id, **(data or {})},
    )


#: The timestamps each state sets when it is entered (the brief's object shows them).
STAMPS: dict[WorkState, tuple[str, ...]] = {
    WorkState.STARTING: ("acknowledged_at",),
    WorkState.ACTIVE: ("started_at",),
    WorkState.STOPPING: ("stop_requested_at",),
    WorkState.STOPPED: ("stopped_at",),
}


def transition_work(
    session: AsyncSession,
    item: WorkItemModel,
    to: WorkState,
    *,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> EventModel:
    """Move `item` to `to` if the table allows it (409 otherwise), set the timestamps
    the brief's object shows, and record the event. The flush is a compare-and-set."""
    current = item.state
    check_transition(current, to)
    now = utcnow()
    item.state = to
    item.updated_at = now
    stamp(item, STAMPS, to, now)
    if to is WorkState.STARTING:
        item.attempts += 1
    elif to is WorkState.STOPPED:
        item.stop_reason = reason
        item.lease_expires_at = None
    elif to is WorkState.QUEUED:
        # A fresh attempt: the object shows this attempt only, and any worker may take it.
        item.worker_id = None
        item.delivered_at = None
        item.acknowledged_at = None
        item.started_at = None
        item.latest_heartbeat_at = None
        item.lease_expires_at = None
        item.lease_ttl_seconds = None
    return record_work_event(
        session,
        item,
        "work.state_changed",
        actor=actor,
        reason=reason,
        data=data,
        came_from=current,
    )


# ---- records ---------------------------------------------------------------------------


async def get_self_hosted(
    session: AsyncSession, principal: Principal, env: str, permission: Permission
) -> EnvironmentModel:
    """The environment, if the caller may see it (404) and it takes work items (400)."""
    model = await get_environment(session, principal, env, permission)
    if model.kind is not EnvironmentKind.SELF_HOSTED:
        raise InvalidRequest(f"environment {env!r} is not self_hosted; it takes no work items")
    return model


async def load_work(
    session: AsyncSession, principal: Principal, env: str, work_id: str, permission: Permission
) -> WorkItemModel:
    model = await get_self_hosted(session, principal, env, permission)
    item = None
    if ids.has_prefix(work_id, ids.WORK_ITEM):
        item = await queries.get(session, model.id, work_id)
    if item is None:
        raise NotFound(f"work item {work_id!r} not found")
    return item


async def create_work(
    session: AsyncSession, principal: Principal, env: str, body: WorkItemCreate
) -> WorkItem:
    model = await get_self_hosted(session, principal, env, Permission.WORK_WRITE)
    item = WorkItemModel(
        id=ids.new_id(ids.WORK_ITEM),
        org_id=model.org_id,
        environment_id=model.id,
        data=body.data,
        meta=body.metadata,
        on_lease_expired=body.on_lease_expired.value,
        max_attempts=body.max_attempts,
    )
    session.add(item)
    record_event(
        session,
        org_id=item.org_id,
        environment_id=item.environment_id,
        type="work.created",
        actor=principal.actor,
        to_state=item.state.value,
        data={"work_id": item.id},
    )
    await record_activity(session, model.id)
    await session.flush()
    return work_item_from_model(item)


async def get_work(session: AsyncSession, principal: Principal, env: str, work_id: str) -> WorkItem:
    item = await load_work(session, principal, env, work_id, Permission.WORK_READ)
    return work_item_from_model(item)


async def list_work(
    session: AsyncSession,
    principal: Principal,
    env: str,
    *,
    states: list[WorkState] | None = None,
    limit: int,
    after_id: str | None = None,
    before_id: str | None = None,
) -> tuple[list[WorkItem], bool]:
    """A page in queue order (oldest first) and whether there are more."""
    model = await get_self_hosted(session, principal, env, Permission.WORK_READ)
    rows, more = await queries.page(
        session,
        model.id,
        states=states or None,
        after_id=after_id,
        before_id=before_id,
        limit=limit,
    )
    return [work_item_from_model(row) for row in rows], more


async def update_metadata(
    session: AsyncSession, principal: Principal, env: str, work_id: str, body: WorkMetadataUpdate
) -> WorkItem:
    """Merge patch on the string-only metadata: strings upsert, null deletes."""

    async def attempt() -> WorkItemModel:
        item = await load_work(session, principal, env, work_id, Permission.WORK_WRITE)
        if body.metadata is None:
            return item
        merged = dict(item.meta)
        for key, value in body.metadata.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != item.meta:
            item.meta = merged
            item.updated_at = utcnow()
            record_work_event(
                session,
                item,
                "work.metadata_updated",
                actor=principal.actor,
                data={"keys": sorted(body.metadata)},
            )
            await session.flush()
        return item

    return work_item_from_model(await with_retry(session, attempt))


async def work_stats(session: AsyncSession, principal: Principal, env: str) -> WorkStats:
    model = await get_self_hosted(session, principal, env, Permission.WORK_READ)
    now = utcnow()
    cutoff = now - timedelta(milliseconds=DEFAULT_RECLAIM_MS)
    depth, pending, oldest = await queries.queue_numbers(session, model.id, cutoff=cutoff)
    counts = await queries.count_by_state(session, model.id)
    return WorkStats(
        depth=depth,
        pending=pending,
        oldest_queued_at=oldest,
        workers_polling=await queries.pollers_since(session, model.id, now - POLLERS_WINDOW),
        by_state={state: counts.get(state, 0) for state in WorkState},
    )


async def work_events(
    session: AsyncSession,
    principal: Principal,
    env: str,
    work_id: str,
    *,
    after: int | None,
    limit: int,
) -> EventList:
    item = await load_work(session, principal, env, work_id, Permission.WORK_READ)
    rows = await queries.events_of(session, item.org_id, item.id, after=after, limit=limit)
    return events_page(rows, limit)
