"""Organizations: created by the operator, each with a first organization key."""

from sandbay.db.models import OrganizationModel
from sandbay.db.queries import tenancy as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.errors import Conflict, NotFound, PermissionDenied
from sandbay.domain.keys import (
    ApiKeyCreate,
    KeyKind,
    Organization,
    OrganizationCreate,
    OrganizationCreated,
    OrganizationUpdate,
    Principal,
)
from sandbay.kit.clock import utcnow
from sandbay.services.tenancy.keys import issue_key


async def create_org(
    session: AsyncSession, principal: Principal, body: OrganizationCreate
) -> OrganizationCreated:
    if not principal.is_admin:
        raise PermissionDenied("creating organizations needs the operator (admin) key")
    if await queries.org_id_named(session, body.name) is not None:
        raise Conflict(f"organization name {body.name!r} is already used")
    org = OrganizationModel(id=ids.new_id(ids.ORGANIZATION), name=body.name, created_at=utcnow())
    session.add(org)
    await session.flush()
    key = await issue_key(session, org.id, ApiKeyCreate(name="initial"), principal)
    return OrganizationCreated(**Organization.model_validate(org).model_dump(), api_key=key)


async def current_org(session: AsyncSession, principal: Principal) -> Organization:
    if principal.org_id is None:
        raise NotFound("the operator key belongs to no organization")
    org = await session.get(OrganizationModel, principal.org_id)
    if org is None:
        raise NotFound("organization not found")
    return Organization.model_validate(org)


async def update_current_org(
    session: AsyncSession, principal: Principal, body: OrganizationUpdate
) -> Organization:
    """Settings of the caller's organization: an organization key only (a scoped key
    changes nothing beyond its environments)."""
    if principal.org_id is None or principal.kind is not KeyKind.ORGANIZATION:
        raise PermissionDenied("changing the organization needs an organization key")
    org = await session.get(OrganizationModel, principal.org_id, with_for_update=True)
    if org is None:
        raise NotFound("organization not found")
    for field in body.model_fields_set:
        setattr(org, field, getattr(body, field))
    await session.flush()
    return Organization.model_validate(org)
