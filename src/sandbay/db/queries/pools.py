"""Queries of warm pools: ready members (candidates for a claim) and every live
member of a pool."""

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.db.models import WarmPoolModel
from sandbay.domain.states import DesiredState, EnvState


async def pool_candidates(session: AsyncSession, key: str, limit: int = 8) -> list[str]:
    """Ready, unleased members of a pool, oldest first."""
    query = (
        select(Env.id)
        .where(
            Env.pool_key == key,
            Env.state == EnvState.RUNNING,
            Env.desired_state == DesiredState.RUNNING,
            Env.lease_token.is_(None),
        )
        .order_by(Env.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def pool_members(session: AsyncSession, key: str) -> list[tuple[str, EnvState]]:
    """(id, state) of every live member of a pool."""
    query = select(Env.id, Env.state).where(Env.pool_key == key, Env.deleted_at.is_(None))
    return [(r[0], r[1]) for r in await session.execute(query)]


async def take_member(session: AsyncSession, env_id: str, key: str) -> bool:
    """Take a ready member out of its pool: a conditional update (and a version
    bump, as the ORM's compare-and-set would) that only one transaction can win; the
    loser changes nothing, so its transaction goes on to another candidate or to a
    fresh environment. The winner holds the row until it commits."""
    result = await session.execute(
        update(Env)
        .where(
            Env.id == env_id,
            Env.pool_key == key,
            Env.state == EnvState.RUNNING,
            Env.lease_token.is_(None),
        )
        .values(pool_key=None, version=Env.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def made_pools(session: AsyncSession, org_id: str | None = None) -> list[WarmPoolModel]:
    """Pools made through the API (of one organization, or all), oldest first."""
    query = select(WarmPoolModel).order_by(WarmPoolModel.created_at, WarmPoolModel.id)
    if org_id is not None:
        query = query.where(WarmPoolModel.org_id == org_id)
    return list((await session.execute(query)).scalars())


async def made_pool(session: AsyncSession, org_id: str, pool_id: str) -> WarmPoolModel | None:
    query = select(WarmPoolModel).where(WarmPoolModel.org_id == org_id, WarmPoolModel.id == pool_id)
    return (await session.execute(query)).scalar_one_or_none()
