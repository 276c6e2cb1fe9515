"""Queries of the audit log: a page of an organization's (or one environment's)
events after a cursor, and the newest event id (where a live stream starts)."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EventModel


async def page(
    session: AsyncSession,
    org_id: str,
    *,
    environment_id: str | None,
    after: int | None,
    limit: int,
    only_environments: frozenset[str] | None = None,
) -> list[EventModel]:
    """Up to `limit + 1` events in id order (the extra one says there is more);
    with `only_environments`, only events of those environments (none of the
    organization's own, such as key or model provider changes)."""
    query = select(EventModel).where(EventModel.org_id == org_id)
    if environment_id is not None:
        query = query.where(EventModel.environment_id == environment_id)
    if only_environments is not None:
        query = query.where(EventModel.environment_id.in_(sorted(only_environments)))
    if after is not None:
        query = query.where(EventModel.id > after)
    query = query.order_by(EventModel.id).limit(limit + 1)
    return list((await session.execute(query)).scalars())


async def latest_id(session: AsyncSession) -> int:
    return int((await session.execute(select(func.max(EventModel.id)))).scalar() or 0)


async def by_ids(session: AsyncSession, ids: list[int]) -> list[EventModel]:
    """Events by id, in id order (those told by another process)."""
    query = select(EventModel).where(EventModel.id.in_(ids)).order_by(EventModel.id)
    return list((await session.execute(query)).scalars())
