"""Resource metrics: recording what the collector sampled (latest on the environment,
history for charts) and reading the history back."""

from datetime import datetime, timedelta

from sandbay.db.queries import metrics as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.metrics import MetricsHistory, ResourceMetrics, offline
from sandbay.kit.clock import utcnow
from sandbay.services.environments.records import get_environment

MIB = 1024 * 1024
DEFAULT_WINDOW = timedelta(hours=1)


async def record_samples(
    session: AsyncSession, samples: dict[str, ResourceMetrics], *, at: datetime
) -> int:
    """Store one sweep: the sampled environments, and an `online: false` sample for
    each one still shown online whose workload is no longer running. Returns how
    many environments were written."""
    rows = [
        (eid, org, samples[eid].model_dump(mode="json"))
        for eid, org in await queries.live_environments(session, list(samples))
    ]
    for eid, org, memory_mb in await queries.shown_online(session, exclude=list(samples)):
        rows.append((eid, org, offline(at, memory_mb * MIB).model_dump(mode="json")))
    await queries.store(session, rows)
    return len(rows)


async def prune_history(session: AsyncSession, *, before: datetime) -> None:
    await queries.prune(session, before)


async def metrics_history(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    *,
    since: datetime | None,
    limit: int,
) -> MetricsHistory:
    """Samples after `since` (default: the last hour), oldest first, one page."""
    env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_READ)
    start = since or utcnow() - DEFAULT_WINDOW
    rows = await queries.history(session, env.id, since=start, limit=limit)
    more = len(rows) > limit
    rows = rows[:limit]
    data = [ResourceMetrics.model_validate(r, from_attributes=True) for r in rows]
    return MetricsHistory(
        data=data, has_more=more, next_since=data[-1].timestamp if more and data else None
    )
