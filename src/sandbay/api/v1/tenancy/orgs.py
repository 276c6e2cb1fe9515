"""/v1/orgs: organizations (created with the operator key)."""

from fastapi import APIRouter, status

from sandbay.api.deps import PrincipalDep, SessionDep
from sandbay.domain.keys import (
    Organization,
    OrganizationCreate,
    OrganizationCreated,
    OrganizationUpdate,
)
from sandbay.domain.quotas import OrganizationUsage, Quotas
from sandbay.services.tenancy import orgs, quotas

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


@router.patch("/current")
async def update_current_org(
    body: OrganizationUpdate, session: SessionDep, principal: PrincipalDep
) -> Organization:
    """Change the caller's organization (organization key only): `default_runtime`."""
    return await orgs.update_current_org(session, principal, body)


@router.get("/current/usage")
async def current_usage(session: SessionDep, principal: PrincipalDep) -> OrganizationUsage:
    """Quotas of the caller's organization and what it uses now and this month."""
    return await quotas.organization_usage(session, principal)


@router.put("/{org_id}/quotas")
async def set_quotas(
    org_id: str, body: Quotas, session: SessionDep, principal: PrincipalDep
) -> Quotas:
    """Set an organization's quotas (operator key only); null means unlimited."""
    return await quotas.set_quotas(session, principal, org_id, body)
