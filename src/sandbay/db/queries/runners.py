"""Queries about runners: how many environments each holds."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env


async def environments_by_runner(session: AsyncSession) -> dict[str, int]:
    """Environments not deleted, counted by their `runner_id` (across organizations:
    runners are the operator's)."""
    query = (
        select(Env.runner_id, func.count())
        .where(Env.deleted_at.is_(None), Env.runner_id.is_not(None))
        .group_by(Env.runner_id)
    )
    return {str(runner): int(n) for runner, n in (await session.execute(query)).all()}
