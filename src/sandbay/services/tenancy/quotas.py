"""Quotas and usage of an organization: admission of creates and starts (serialised
per organization by a row lock), usage reports, and the operator's quota settings."""

from datetime import datetime

from sandbay.db.models import OrganizationModel
from sandbay.db.queries import tenancy as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.errors import NotFound, PermissionDenied
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.quotas import (
    OrganizationUsage,
    Quotas,
    Usage,
    check_admission,
    period_of,
)
from sandbay.kit.clock import utcnow
from sandbay.services.tenancy.auth import require


async def _lock_org(session: AsyncSession, org_id: str) -> OrganizationModel:
    """The organization under its row lock, re-read: two admissions of one org
    cannot both pass on stale counts."""
    await queries.lock_org(session, org_id)
    org = await session.get(OrganizationModel, org_id, populate_existing=True)
    if org is None:
        raise NotFound("organization not found")
    return org


async def current_usage(session: AsyncSession, org_id: str, now: datetime) -> Usage:
    environments, cpu, memory_mb = await queries.running_totals(session, org_id)
    period = period_of(now)
    closed = await queries.closed_seconds(session, org_id, period)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    open_runs = await queries.open_run_starts(session, org_id)
    ongoing = sum(
        (now - max(started, month_start)).total_seconds() for started in open_runs if started
    )
    return Usage(
        period=period,
        running_environments=environments,
        running_cpu=cpu,
        running_memory_mb=memory_mb,
        running_seconds_this_month=closed + max(ongoing, 0.0),
    )


async def admit(session: AsyncSession, org_id: str, *, cpu: float, memory_mb: int) -> None:
    """Refuse (400 quota_exceeded) a create/start past the org's quotas. An org
    without quotas takes no lock, so its creates do not queue behind each other."""
    org = await session.get(OrganizationModel, org_id)
    if org is None or Quotas.model_validate(org) == Quotas():
        return
    org = await _lock_org(session, org_id)
    quotas = Quotas.model_validate(org)
    check_admission(
        quotas, await current_usage(session, org_id, utcnow()), cpu=cpu, memory_mb=memory_mb
    )


async def organization_usage(session: AsyncSession, principal: Principal) -> OrganizationUsage:
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    org = await session.get(OrganizationModel, org_id)
    if org is None:
        raise NotFound("organization not found")
    return OrganizationUsage(
        quotas=Quotas.model_validate(org), usage=await current_usage(session, org_id, utcnow())
    )


async def set_quotas(
    session: AsyncSession, principal: Principal, org_id: str, quotas: Quotas
) -> Quotas:
    if not principal.is_admin:
        raise PermissionDenied("setting quotas needs the operator (admin) key")
    org = await session.get(OrganizationModel, org_id)
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    for field, value in quotas.model_dump().items():
        setattr(org, field, value)
    await session.flush()
    return Quotas.model_validate(org)
