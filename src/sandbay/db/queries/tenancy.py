"""Queries of organizations, API keys and quotas: lookups by name and key hash, the
organization's row lock that serialises admissions, and the sums its usage is
made of (compute held now, running time closed this month, runs still open)."""

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import ApiKeyModel, OrganizationModel, UsageModel
from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.states import DesiredState, EnvState

#: States that hold no compute even when the environment is meant to run.
_NOT_HOLDING = (EnvState.DELETING, EnvState.DELETED, EnvState.ERROR)


async def org_named(session: AsyncSession, name: str) -> OrganizationModel | None:
    query = select(OrganizationModel).where(OrganizationModel.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def org_id_named(session: AsyncSession, name: str) -> str | None:
    query = select(OrganizationModel.id).where(OrganizationModel.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def key_by_hash(session: AsyncSession, digest: str) -> ApiKeyModel | None:
    query = select(ApiKeyModel).where(ApiKeyModel.key_hash == digest)
    return (await session.execute(query)).scalar_one_or_none()


async def keys_of(session: AsyncSession, org_id: str) -> list[ApiKeyModel]:
    query = select(ApiKeyModel).where(ApiKeyModel.org_id == org_id).order_by(ApiKeyModel.id)
    return list((await session.execute(query)).scalars())


async def lock_org(session: AsyncSession, org_id: str) -> None:
    """Take the organization's row lock (an UPDATE of `quota_version`), so that two
    admissions of one org cannot both pass on stale counts, on SQLite and
    PostgreSQL alike. It holds until the transaction ends."""
    await session.execute(
        update(OrganizationModel)
        .where(OrganizationModel.id == org_id)
        .values(quota_version=OrganizationModel.quota_version + 1)
        .execution_options(synchronize_session=False)
    )


async def running_totals(session: AsyncSession, org_id: str) -> tuple[int, float, int]:
    """(environments, CPUs, memory MB) of the org's managed environments meant to run
    that hold compute (warm-pool members are the platform's, not the org's)."""
    query = (
        select(
            func.count(),
            func.coalesce(func.sum(Env.cpu), 0),
            func.coalesce(func.sum(Env.memory_mb), 0),
        )
        .where(Env.org_id == org_id, Env.desired_state == DesiredState.RUNNING)
        .where(Env.state.not_in(_NOT_HOLDING), Env.kind == EnvironmentKind.MANAGED)
        .where(Env.pool_key.is_(None))
    )
    count, cpu, memory = (await session.execute(query)).one()
    return int(count), float(cpu), int(memory)


async def closed_seconds(session: AsyncSession, org_id: str, period: str) -> float:
    """Running time of the org's runs closed in `period` (the usage ledger)."""
    query = select(func.coalesce(func.sum(UsageModel.seconds), 0)).where(
        UsageModel.org_id == org_id, UsageModel.period == period
    )
    return float((await session.execute(query)).scalar_one())


async def open_run_starts(session: AsyncSession, org_id: str) -> list[datetime | None]:
    """When each of the org's running environments started its current run."""
    query = select(Env.started_at).where(Env.org_id == org_id, Env.state == EnvState.RUNNING)
    return list((await session.execute(query)).scalars())
