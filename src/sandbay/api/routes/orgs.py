"""/v1/orgs: organizations (created with the operator key)."""

from fastapi import APIRouter, status

from sandbay.api.deps import PrincipalDep, SessionDep
from sandbay.domain.keys import Organization, OrganizationCreate, OrganizationCreated
from sandbay.services import orgs

router = APIRouter(prefix="/v1/orgs", tags=["organizations"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_org(
    body: OrganizationCreate, session: SessionDep, principal: PrincipalDep
) -> OrganizationCreated:
    """Create an organization and its first organization key (operator key only)."""
    return await orgs.create_org(session, principal, body)


@router.get("/current")
async def current_org(session: SessionDep, principal: PrincipalDep) -> Organization:
    """The organization the calling key belongs to."""
    return await orgs.current_org(session, principal)
