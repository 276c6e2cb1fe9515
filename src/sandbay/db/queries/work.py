"""Queries on work items: the queue claim (a compare-and-set that holds on SQLite and
PostgreSQL, with `FOR UPDATE SKIP LOCKED` on PostgreSQL so pollers skip each
other's candidates), pages, queue statistics, expired leases and who polls. The
one place with dialect differences for work items."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel, EventModel
from sandbay.db.models import WorkItemModel as Work
from sandbay.db.models import WorkPollerModel as Poller
from sandbay.domain.states import EnvState
from sandbay.domain.work import LIVE, LeasePolicy, WorkItem, WorkState

#: States in which a worker holds the item under a lease.
LEASED = (WorkState.STARTING, WorkState.ACTIVE, WorkState.STOPPING)


def work_item_from_model(item: Work) -> WorkItem:
    """The work item as services hand it out (API and dialects map from this)."""
    return WorkItem(
        id=item.id,
        environment_id=item.environment_id,
        data=item.data,
        state=item.state,
        created_at=item.created_at,
        acknowledged_at=item.acknowledged_at,
        started_at=item.started_at,
        latest_heartbeat_at=item.latest_heartbeat_at,
        stop_requested_at=item.stop_requested_at,
        stopped_at=item.stopped_at,
        metadata=item.meta,
        worker_id=item.worker_id,
        attempts=item.attempts,
        max_attempts=item.max_attempts,
        on_lease_expired=LeasePolicy(item.on_lease_expired),
        lease_expires_at=item.lease_expires_at,
        stop_reason=item.stop_reason,
        updated_at=item.updated_at,
    )


def _locking(session: AsyncSession, query: Select[Any]) -> Select[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def get(session: AsyncSession, environment_id: str, work_id: str) -> Work | None:
    query = select(Work).where(Work.id == work_id, Work.environment_id == environment_id)
    result = await session.execute(query.execution_options(populate_existing=True))
    return result.scalars().first()


def _claimable(cutoff: datetime) -> ColumnElement[bool]:
    """Queued and never delivered, or delivered at or before `cutoff` without an ack."""
    return (Work.state == WorkState.QUEUED) & or_(
        Work.delivered_at.is_(None), Work.delivered_at <= cutoff
    )


async def claimable_ids(
    session: AsyncSession, environment_id: str, *, cutoff: datetime, limit: int
) -> list[str]:
    """Candidates for a poll, oldest first (ids are time-ordered: queue order)."""
    query = (
        select(Work.id)
        .where(Work.environment_id == environment_id, _claimable(cutoff))
        .order_by(Work.id)
        .limit(limit)
    )
    return list((await session.execute(_locking(session, query))).scalars())


async def claim(
    session: AsyncSession, work_id: str, *, cutoff: datetime, worker_id: str | None, now: datetime
) -> bool:
    """Deliver the item to this poller if it is still claimable. The WHERE clause is
    the compare-and-set: of two pollers racing for one item exactly one updates it,
    and `version` is bumped so an ORM writer holding an older copy loses too."""
    result = await session.execute(
        update(Work)
        .where(Work.id == work_id, _claimable(cutoff))
        .values(
            delivered_at=now,
            worker_id=worker_id,
            deliveries=Work.deliveries + 1,
            updated_at=now,
            version=Work.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def page(
    session: AsyncSession,
    environment_id: str,
    *,
    states: Sequence[WorkState] | None,
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> tuple[list[Work], bool]:
    """Up to `limit` items in queue (id) order, after `after_id` or just before
    `before_id`, and whether there are more in that direction."""
    query = select(Work).where(Work.environment_id == environment_id)
    if states:
        query = query.where(Work.state.in_(list(states)))
    if after_id:
        query = query.where(Work.id > after_id)
    if before_id:
        query = query.where(Work.id < before_id).order_by(Work.id.desc()).limit(limit + 1)
        rows = list((await session.execute(query)).scalars())
        return list(reversed(rows[:limit])), len(rows) > limit
    rows = list((await session.execute(query.order_by(Work.id).limit(limit + 1))).scalars())
    return rows[:limit], len(rows) > limit


async def count_by_state(session: AsyncSession, environment_id: str) -> dict[WorkState, int]:
    query = (
        select(Work.state, func.count())
        .where(Work.environment_id == environment_id)
        .group_by(Work.state)
    )
    return {state: int(n) for state, n in (await session.execute(query)).all()}


async def queue_numbers(
    session: AsyncSession, environment_id: str, *, cutoff: datetime
) -> tuple[int, int, datetime | None]:
    """(claimable now, delivered since `cutoff` but not acknowledged, oldest queued)."""
    queued = (Work.environment_id == environment_id) & (Work.state == WorkState.QUEUED)
    claimable = func.count().filter(_claimable(cutoff))
    pending = func.count().filter(Work.delivered_at > cutoff)
    query = select(claimable, pending, func.min(Work.created_at)).where(queued)
    depth, waiting, oldest = (await session.execute(query)).one()
    return int(depth), int(waiting), oldest


async def expired_ids(session: AsyncSession, now: datetime, *, limit: int) -> list[str]:
    """Items whose worker's lease ran out, soonest-expired first."""
    query = (
        select(Work.id)
        .where(Work.state.in_(LEASED), Work.lease_expires_at < now)
        .order_by(Work.lease_expires_at)
        .limit(limit)
    )
    return list((await session.execute(_locking(session, query))).scalars())


async def orphaned_ids(session: AsyncSession, *, limit: int) -> list[str]:
    """Live items of environments that are being (or have been) deleted."""
    query = (
        select(Work.id)
        .join(EnvironmentModel, EnvironmentModel.id == Work.environment_id)
        .where(
            EnvironmentModel.state.in_((EnvState.DELETING, EnvState.DELETED)),
            Work.state.in_(sorted(LIVE)),
        )
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def touch_poller(
    session: AsyncSession, environment_id: str, worker_id: str, now: datetime
) -> None:
    """Upsert when this Worker-ID last polled; at most one write a second per worker."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Poller).values(
        environment_id=environment_id, worker_id=worker_id, last_poll_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Poller.environment_id, Poller.worker_id],
        set_={"last_poll_at": now},
        where=Poller.last_poll_at < now - timedelta(seconds=1),
    )
    await session.execute(statement)


async def pollers_since(session: AsyncSession, environment_id: str, since: datetime) -> int:
    query = select(func.count()).where(
        Poller.environment_id == environment_id, Poller.last_poll_at >= since
    )
    return int((await session.execute(query)).scalar_one())


async def events_of(
    session: AsyncSession, org_id: str, work_id: str, *, after: int | None, limit: int
) -> list[EventModel]:
    """The audit log of one work item (its events carry `work_id` in their data)."""
    query = select(EventModel).where(
        EventModel.org_id == org_id, EventModel.data["work_id"].as_string() == work_id
    )
    if after is not None:
        query = query.where(EventModel.id > after)
    return list((await session.execute(query.order_by(EventModel.id).limit(limit + 1))).scalars())
