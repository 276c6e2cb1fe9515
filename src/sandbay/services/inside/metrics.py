"""Resource metrics: recording what the collector sampled (latest on the environment,
history for charts), reading them back, and what only the inside can tell (disk and
page-cache use)."""

import asyncio
from datetime import datetime, timedelta

from sandbay.db.queries import metrics as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.environments import Environment
from sandbay.domain.errors import Conflict, InvalidRequest, WaitTimeout
from sandbay.domain.exec import ProcessSpec
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.metrics import (
    USAGE_PROBE,
    InsideUsage,
    MetricsHistory,
    ResourceMetrics,
    offline,
    parse_usage,
    thin,
)
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.environments.records import get_environment, read_environment
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import open_target

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


#: Samples read for one history request, and how many of them it answers at most.
HISTORY_READ = 20_000
HISTORY_POINTS = 1_000
PROBE_TIMEOUT = 30.0
FIRST_SAMPLE_WAIT = 15.0
SAMPLE_POLL = 0.25


async def latest_sample(
    inside: InsideService, principal: Principal, id_or_name: str
) -> tuple[Environment, ResourceMetrics]:
    """The environment and its latest sample of the running workload. A workload
    started moments ago has none yet: it is waited for (in short sessions, up to
    FIRST_SAMPLE_WAIT, more than the collector's default interval), then 409."""
    waited = 0.0
    while True:
        async with inside.sessions() as session:
            env = await read_environment(session, principal, id_or_name)
        if env.state is not EnvState.RUNNING:
            raise Conflict(f"environment is {env.state}; it must be running")
        if env.metrics is not None and env.metrics.online:
            return env, env.metrics
        if waited >= FIRST_SAMPLE_WAIT:
            raise Conflict(f"no resource sample of {env.id} yet: is the collector off?")
        await asyncio.sleep(SAMPLE_POLL)
        waited += SAMPLE_POLL


async def samples_between(
    session: AsyncSession, principal: Principal, id_or_name: str, start: datetime, end: datetime
) -> tuple[Environment, list[ResourceMetrics]]:
    """The environment and its samples while running from `start` to `end`, oldest
    first, thinned to HISTORY_POINTS (the newest HISTORY_READ are read)."""
    if end < start:
        raise InvalidRequest("the end of the range is before its start")
    env = await read_environment(session, principal, id_or_name)
    rows = await queries.between(session, env.id, start=start, end=end, limit=HISTORY_READ)
    data = [ResourceMetrics.model_validate(r, from_attributes=True) for r in reversed(rows)]
    return env, thin(data, HISTORY_POINTS)


async def inside_usage(inside: InsideService, principal: Principal, id_or_name: str) -> InsideUsage:
    """Disk and page-cache use read inside the running environment (as root, not as
    activity: reading metrics does not keep it awake)."""
    target = await open_target(
        inside.sessions, principal, id_or_name, Permission.ENVIRONMENTS_READ, activity=False
    )
    spec = ProcessSpec(argv=USAGE_PROBE, user="root")
    handle = await inside.runner.spawn(target.environment_id, spec)
    out = bytearray()

    async def collect() -> None:
        async for chunk in handle.output():
            if chunk.stream == "stdout" and len(out) < 64 * 1024:
                out.extend(chunk.data)
        await handle.wait()

    try:
        await asyncio.wait_for(collect(), PROBE_TIMEOUT)
    except TimeoutError:
        await handle.kill()
        raise WaitTimeout("reading the sandbox's disk use took too long") from None
    finally:
        await handle.close()
    return parse_usage(out.decode(errors="replace"))
