"""Queries of the agents capability: an environment's agent runs, an organization's
model providers, and OpenClaw instances (with their environments, the ones waiting
for their gateway's configuration, and the provisioning claim)."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import AgentInstanceModel as Instance
from sandbay.db.models import AgentRunModel, ModelProviderModel
from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain.states import EnvState


async def runs_of(session: AsyncSession, environment_id: str, *, limit: int) -> list[AgentRunModel]:
    """An environment's runs, newest first."""
    query = (
        select(AgentRunModel)
        .where(AgentRunModel.environment_id == environment_id)
        .order_by(AgentRunModel.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def provider_named(
    session: AsyncSession, org_id: str, name: str
) -> ModelProviderModel | None:
    query = select(ModelProviderModel).where(
        ModelProviderModel.org_id == org_id, ModelProviderModel.name == name
    )
    return (await session.execute(query)).scalar_one_or_none()


async def providers_of(session: AsyncSession, org_id: str) -> list[ModelProviderModel]:
    """An organization's model providers, by name."""
    query = (
        select(ModelProviderModel)
        .where(ModelProviderModel.org_id == org_id)
        .order_by(ModelProviderModel.name)
    )
    return list((await session.execute(query)).scalars())


async def instances_of(session: AsyncSession, org_id: str) -> list[tuple[Instance, Env]]:
    """Every live instance of an organization with its environment, newest first."""
    query = (
        select(Instance, Env)
        .join(Env, Env.id == Instance.environment_id)
        .where(
            Instance.org_id == org_id,
            Instance.deleted_at.is_(None),
            Env.deleted_at.is_(None),
        )
        .order_by(Instance.created_at.desc())
    )
    return [(i, e) for i, e in await session.execute(query)]


async def unprovisioned_running(session: AsyncSession) -> list[str]:
    """Environment ids of live instances that run but whose gateway is not configured."""
    query = (
        select(Instance.environment_id)
        .join(Env, Env.id == Instance.environment_id)
        .where(
            Instance.provisioned_at.is_(None),
            Instance.deleted_at.is_(None),
            Env.state == EnvState.RUNNING,
        )
    )
    return list((await session.execute(query)).scalars())


async def claim_provisioning(session: AsyncSession, environment_id: str, now: datetime) -> bool:
    """Mark the instance provisioned unless it already is: a compare-and-set on
    `provisioned_at`, so of two replicas one writes the gateway's configuration."""
    result = await session.execute(
        update(Instance)
        .where(Instance.environment_id == environment_id, Instance.provisioned_at.is_(None))
        .values(provisioned_at=now, error_message=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
