"""Daytona's sandbox metrics over sandbay's collector. `sandbox.get_metrics_latest()`
reads the toolbox's `/system/metrics` (the daemon's live sample): CPU and memory from
the environment's latest sample, disk and page cache read inside it.
`sandbox.get_metrics(start, end)` reads `/sandbox/{id}/telemetry/metrics` (`/config`
names no analytics service), each metric a series under Daytona's OpenTelemetry name.
Units are Daytona's: CPU in percent of the sandbox's CPUs, sizes in bytes, the disk
total the sandbox's disk quota. The collector keeps no disk or page-cache history, so
those series are left out (Daytona's SDK reads what is missing as 0); nor does
Daytona name network counters, which sandbay's native metrics have."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from sandbay.api.deps import InsideDep, SessionDep
from sandbay.dialects.kit import iso_millis, whole_up
from sandbay.domain.environments import Environment
from sandbay.domain.metrics import ResourceMetrics
from sandbay.services.inside import metrics

from .errors import DaytonaPrincipal
from .sandboxes import SandboxIdOrName

router = APIRouter(tags=["daytona"])

GIB = 1024**3
CPU_UTILIZATION = "daytona.sandbox.cpu.utilization"
CPU_LIMIT = "daytona.sandbox.cpu.limit"
MEMORY_USAGE = "daytona.sandbox.memory.usage"
MEMORY_LIMIT = "daytona.sandbox.memory.limit"
#: The series a history answers (of the SDK's seven, those the collector keeps).
SERIES = (CPU_UTILIZATION, CPU_LIMIT, MEMORY_USAGE, MEMORY_LIMIT)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaSystemMetrics(_Camel):
    cpu_count: int
    cpu_used_pct: float
    disk_free: int
    disk_total: int
    disk_used: int
    mem_cache: int
    mem_total: int
    mem_used: int
    timestamp: str
    timestamp_unix: int


class DaytonaDataPoint(BaseModel):
    timestamp: str
    value: float


class DaytonaSeries(_Camel):
    metric_name: str
    data_points: list[DaytonaDataPoint]


class DaytonaMetrics(BaseModel):
    series: list[DaytonaSeries]


def cpu_used_pct(env: Environment, sample: ResourceMetrics) -> float:
    """Native CPU % is of one CPU; Daytona's is of the sandbox's CPUs."""
    return round(sample.cpu_percent / env.cpu, 2) if env.cpu else 0.0


def _values(env: Environment, sample: ResourceMetrics) -> dict[str, float]:
    return {
        CPU_UTILIZATION: cpu_used_pct(env, sample),
        CPU_LIMIT: whole_up(env.cpu),
        MEMORY_USAGE: sample.memory_bytes,
        MEMORY_LIMIT: sample.memory_limit_bytes,
    }


def series_of(
    env: Environment, samples: list[ResourceMetrics], names: list[str] | None
) -> list[DaytonaSeries]:
    wanted = [n for n in SERIES if names is None or n in names]
    rows = [(iso_millis(s.timestamp) or "", _values(env, s)) for s in samples]
    return [
        DaytonaSeries(
            metric_name=name,
            data_points=[DaytonaDataPoint(timestamp=at, value=v[name]) for at, v in rows],
        )
        for name in wanted
    ]


@router.get("/toolbox/{sandboxId}/system/metrics", tags=["daytona-toolbox"])
async def system_metrics(
    sandbox: Annotated[str, Path(alias="sandboxId")],
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> DaytonaSystemMetrics:
    """The current sample: CPU and memory as last sampled (a sandbox started moments
    ago waits for its first sample), disk and page cache read now."""
    env, sample = await metrics.latest_sample(toolbox, principal, sandbox)
    usage = await metrics.inside_usage(toolbox, principal, env.id)
    disk_total = env.disk_gb * GIB
    return DaytonaSystemMetrics(
        cpu_count=whole_up(env.cpu),
        cpu_used_pct=cpu_used_pct(env, sample),
        disk_free=max(0, disk_total - usage.disk_used_bytes),
        disk_total=disk_total,
        disk_used=usage.disk_used_bytes,
        mem_cache=usage.memory_cache_bytes,
        mem_total=sample.memory_limit_bytes,
        mem_used=sample.memory_bytes,
        timestamp=iso_millis(sample.timestamp) or "",
        timestamp_unix=int(sample.timestamp.timestamp()),
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/sandbox/{sandboxIdOrName}/telemetry/metrics")
async def telemetry_metrics(
    sandbox: SandboxIdOrName,
    start: Annotated[datetime, Query(alias="from", description="ISO 8601")],
    end: Annotated[datetime, Query(alias="to", description="ISO 8601")],
    session: SessionDep,
    principal: DaytonaPrincipal,
    names: Annotated[list[str] | None, Query(alias="metricNames", max_length=64)] = None,
) -> DaytonaMetrics:
    """The samples taken while the sandbox ran in [from, to], one series per metric
    (CPU utilization and limit, memory usage and limit), oldest first."""
    env, samples = await metrics.samples_between(
        session, principal, sandbox, _utc(start), _utc(end)
    )
    return DaytonaMetrics(series=series_of(env, samples, names))
