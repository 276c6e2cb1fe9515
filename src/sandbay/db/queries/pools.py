"""Queries of warm pools: ready members (candidates for a claim) and every live
member of a pool."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
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
