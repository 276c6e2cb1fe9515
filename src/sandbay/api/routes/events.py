"""/v1/events: the organization's audit log."""

from typing import Annotated

from fastapi import APIRouter, Query

from sandbay.api.deps import PrincipalDep, SessionDep
from sandbay.domain.environments import EventList
from sandbay.services import audit

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("")
async def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    after: Annotated[int | None, Query(ge=0, description="Only events after this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """Every recorded action and state change of the organization, oldest first."""
    return await audit.org_events(session, principal, after=after, limit=limit)
