"""Reading the audit log: per environment and per organization, resumable by id."""

from sandbay.db.models import EventModel
from sandbay.db.queries import events as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.environments import Event, EventList
from sandbay.domain.keys import Permission, Principal
from sandbay.services.environments.records import get_environment
from sandbay.services.tenancy.auth import require


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
    rows = await queries.page(session, env.org_id, environment_id=env.id, after=after, limit=limit)
    return page(rows, limit)


async def org_events(
    session: AsyncSession, principal: Principal, *, after: int | None, limit: int
) -> EventList:
    """The organization's log; a key limited to some environments reads only theirs."""
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    rows = await queries.page(
        session,
        org_id,
        environment_id=None,
        after=after,
        limit=limit,
        only_environments=principal.environment_ids,
    )
    return page(rows, limit)
