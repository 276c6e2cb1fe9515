"""Queries of resource metrics: the latest sample on the environment row (written
without touching `version` or `last_activity_at`: a sample is neither a state change
nor activity) and the history table."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentMetricsModel as Metric
from sandbay.db.models import EnvironmentModel as Env

#: Core table: an ORM UPDATE would bump `version`, making lifecycle CAS writes lose.
_envs = cast(Table, Env.__table__)


async def live_environments(session: AsyncSession, ids: Sequence[str]) -> list[tuple[str, str]]:
    """(id, org_id) of the given environments that are not deleted."""
    if not ids:
        return []
    query = select(Env.id, Env.org_id).where(Env.id.in_(list(ids)), Env.deleted_at.is_(None))
    return [(r[0], r[1]) for r in (await session.execute(query)).all()]


async def shown_online(session: AsyncSession, exclude: Sequence[str]) -> list[tuple[str, str, int]]:
    """(id, org_id, memory_mb) of environments whose latest sample says online."""
    query = select(Env.id, Env.org_id, Env.memory_mb).where(
        Env.metrics["online"].as_boolean() == true()
    )
    if exclude:
        query = query.where(Env.id.not_in(list(exclude)))
    return [(r[0], r[1], r[2]) for r in (await session.execute(query)).all()]


async def store(session: AsyncSession, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Set the latest sample of each (id, org_id, sample) and append it to history."""
    if not rows:
        return
    await session.execute(
        update(_envs).where(_envs.c.id == bindparam("eid")).values(metrics=bindparam("sample")),
        [{"eid": eid, "sample": sample} for eid, _, sample in rows],
    )
    await session.execute(
        insert(Metric),
        [
            {
                "environment_id": eid,
                "org_id": org,
                **{k: v for k, v in sample.items() if k != "timestamp"},
                "timestamp": datetime.fromisoformat(sample["timestamp"]),
            }
            for eid, org, sample in rows
        ],
    )


async def prune(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(Metric).where(Metric.timestamp < before))


async def history(
    session: AsyncSession, environment_id: str, *, since: datetime, limit: int
) -> list[Metric]:
    query = (
        select(Metric)
        .where(Metric.environment_id == environment_id, Metric.timestamp > since)
        .order_by(Metric.timestamp, Metric.id)
        .limit(limit + 1)
    )
    return list((await session.execute(query)).scalars())


async def between(
    session: AsyncSession, environment_id: str, *, start: datetime, end: datetime, limit: int
) -> list[Metric]:
    """The newest `limit` samples taken from `start` to `end` while the workload ran,
    newest first."""
    query = (
        select(Metric)
        .where(
            Metric.environment_id == environment_id,
            Metric.timestamp >= start,
            Metric.timestamp <= end,
            Metric.online.is_(True),
        )
        .order_by(Metric.timestamp.desc(), Metric.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
