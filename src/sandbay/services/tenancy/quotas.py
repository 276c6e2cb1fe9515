"""Quotas and usage of an organization: admission of creates and starts (serialised
per organization by a row lock), usage reports, and the operator's quota settings."""

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.db.models import OrganizationModel, UsageModel
from sandbay.domain.errors import NotFound, PermissionDenied
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.quotas import (
    OrganizationUsage,
    Quotas,
    Usage,
    check_admission,
    period_of,
)
from sandbay.domain.states import DesiredState, EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.tenancy.auth import require

#: States that hold no compute even when the environment is meant to run.
_NOT_HOLDING = [EnvState.DELETING.value, EnvState.DELETED.value, EnvState.ERROR.value]


async def _lock_org(session: AsyncSession, org_id: str) -> OrganizationModel:
    """Take the organization's row lock (an UPDATE), so that two admissions of one
    org cannot both pass on stale counts — on SQLite and PostgreSQL alike."""
    await session.execute(
        update(OrganizationModel)
        .where(OrganizationModel.id == org_id)
        .values(quota_version=OrganizationModel.quota_version + 1)
        .execution_options(synchronize_session=False)
    )
    org = await session.get(OrganizationModel, org_id, populate_existing=True)
    if org is None:
        raise NotFound("organization not found")
    return org


async def current_usage(session: AsyncSession, org_id: str, now: datetime) -> Usage:
    running = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Env.cpu), 0),
                func.coalesce(func.sum(Env.memory_mb), 0),
            )
            .where(Env.org_id == org_id, Env.desired_state == DesiredState.RUNNING.value)
            .where(Env.state.not_in(_NOT_HOLDING), Env.kind == "managed")
            .where(Env.pool_key.is_(None))
        )
    ).one()
    period = period_of(now)
    closed = (
        await session.execute(
            select(func.coalesce(func.sum(UsageModel.seconds), 0)).where(
                UsageModel.org_id == org_id, UsageModel.period == period
            )
        )
    ).scalar_one()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    open_runs = (
        await session.execute(
            select(Env.started_at).where(Env.org_id == org_id, Env.state == EnvState.RUNNING.value)
        )
    ).scalars()
    ongoing = sum(
        (now - max(started, month_start)).total_seconds() for started in open_runs if started
    )
    return Usage(
        period=period,
        running_environments=int(running[0]),
        running_cpu=float(running[1]),
        running_memory_mb=int(running[2]),
        running_seconds_this_month=float(closed) + max(ongoing, 0.0),
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
