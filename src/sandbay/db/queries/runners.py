"""Queries about runners: how many environments each holds."""

from collections.abc import Collection

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.states import DesiredState

MIB = 1024 * 1024


async def environments_by_runner(session: AsyncSession) -> dict[str, int]:
    """Environments not deleted, counted by their `runner_id` (across organizations:
    runners are the operator's)."""
    query = (
        select(Env.runner_id, func.count())
        .where(Env.deleted_at.is_(None), Env.runner_id.is_not(None))
        .group_by(Env.runner_id)
    )
    return {str(runner): int(n) for runner, n in (await session.execute(query)).all()}


async def agent_route(session: AsyncSession, env_id: str) -> tuple[str | None, str | None] | None:
    """(runner id, published agent endpoint) of a live environment, None if none."""
    query = select(Env.runner_id, Env.agent_endpoint).where(
        Env.id == env_id, Env.deleted_at.is_(None)
    )
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


async def rename_runner(session: AsyncSession, old: Collection[str], new: str) -> int:
    """Environments whose `runner_id` is one of `old` now name runner `new`."""
    done = await session.execute(
        update(Env).where(Env.runner_id.in_(list(old))).values(runner_id=new)
    )
    return int(getattr(done, "rowcount", 0) or 0)


async def reservations(session: AsyncSession) -> dict[str, tuple[float, int, int]]:
    """Per runner: (CPUs, memory bytes, environments) of its managed environments that
    are running or meant to run (a stopped one holds none until it starts again)."""
    query = (
        select(Env.runner_id, func.sum(Env.cpu), func.sum(Env.memory_mb), func.count())
        .where(
            Env.deleted_at.is_(None),
            Env.runner_id.is_not(None),
            Env.kind == EnvironmentKind.MANAGED,
            Env.desired_state.in_([DesiredState.RUNNING, DesiredState.PAUSED]),
        )
        .group_by(Env.runner_id)
    )
    return {
        str(runner): (float(cpu or 0), int(memory or 0) * MIB, int(n))
        for runner, cpu, memory, n in (await session.execute(query)).all()
    }


async def to_mark(
    session: AsyncSession, runners: Collection[str], *, unreachable: bool
) -> list[Env]:
    """Live environments of `runners` not yet marked unreachable (`unreachable`), or
    marked and now to be cleared."""
    if not runners:
        return []
    since = Env.runner_unreachable_since
    query = select(Env).where(
        Env.runner_id.in_(list(runners)),
        Env.deleted_at.is_(None),
        since.is_(None) if unreachable else since.is_not(None),
    )
    return list((await session.execute(query)).scalars())
