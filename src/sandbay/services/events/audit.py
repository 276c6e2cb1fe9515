"""Reading the audit log: per environment and per organization, resumable by id."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EventModel
from sandbay.domain.environments import Event, EventList
from sandbay.domain.keys import Permission, Principal
from sandbay.services.environments.records import get_environment
from sandbay.services.tenancy.auth import require


async def list_events(
    session: AsyncSession,
    org_id: str,
    *,
    environment_id: str | None,
    after: int | None,
    limit: int,
) -> list[EventModel]:
    query = select(EventModel).where(EventModel.org_id == org_id)
    if environment_id is not None:
        query = query.where(EventModel.environment_id == environment_id)
    if after is not None:
        query = query.where(EventModel.id > after)
    query = query.order_by(EventModel.id).limit(limit + 1)
    return list((await session.execute(query)).scalars())


def page(rows: list[EventModel], limit: int) -> EventList:
    """A page of events from `limit + 1` rows (the extra one says there is more)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return EventList(
        data=[Event.model_validate(r) for r in rows],
        has_more=more,
        next_cursor=rows[-1].id if more and rows else None,
    )


async def environment_events(
    session: AsyncSession, principal: Principal, id_or_name: str, *, after: int | None, limit: int
) -> EventList:
    env = await get_environment(session, principal, id_or_name, include_deleted=True)
    rows = await list_events(session, env.org_id, environment_id=env.id, after=after, limit=limit)
    return page(rows, limit)


async def org_events(
    session: AsyncSession, principal: Principal, *, after: int | None, limit: int
) -> EventList:
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    rows = await list_events(session, org_id, environment_id=None, after=after, limit=limit)
    return page(rows, limit)
