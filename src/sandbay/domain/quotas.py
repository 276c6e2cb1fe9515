"""Organization quotas and usage, and the admission check (pure)."""

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from sandbay.domain.errors import QuotaExceeded


class Quotas(BaseModel):
    """Limits of an organization; null means unlimited. Stopped environments never count."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    max_running_environments: int | None = Field(None, ge=0)
    max_running_cpu: float | None = Field(None, ge=0)
    max_running_memory_mb: int | None = Field(None, ge=0)
    max_running_hours_per_month: float | None = Field(None, ge=0)
    #: Snapshots kept at once (creating, ready or failed; domain.snapshots).
    max_snapshots: int | None = Field(None, ge=0)


class Usage(BaseModel):
    """What an organization uses now and has used this month (UTC)."""

    period: str
    running_environments: int
    running_cpu: float
    running_memory_mb: int
    running_seconds_this_month: float


class OrganizationUsage(BaseModel):
    quotas: Quotas
    usage: Usage


def check_admission(quotas: Quotas, usage: Usage, *, cpu: float, memory_mb: int) -> None:
    """Refuse a create or start that would go past a quota (with `quota_exceeded`)."""
    q = quotas
    envs_limit, mem_limit = q.max_running_environments, q.max_running_memory_mb
    if envs_limit is not None and usage.running_environments + 1 > envs_limit:
        raise QuotaExceeded(
            f"{usage.running_environments} of {envs_limit} running environments already in use"
        )
    if q.max_running_cpu is not None and usage.running_cpu + cpu > q.max_running_cpu + 1e-9:
        raise QuotaExceeded(
            f"{usage.running_cpu:g} + {cpu:g} CPUs exceeds the limit of {q.max_running_cpu:g}"
        )
    if mem_limit is not None and usage.running_memory_mb + memory_mb > mem_limit:
        raise QuotaExceeded(
            f"{usage.running_memory_mb} + {memory_mb} MB exceeds the limit of {mem_limit} MB"
        )
    hours_limit = q.max_running_hours_per_month
    if hours_limit is not None and usage.running_seconds_this_month / 3600 >= hours_limit:
        raise QuotaExceeded(
            f"{usage.running_seconds_this_month / 3600:.2f} of {hours_limit:g} running hours "
            "used this month"
        )


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def split_by_month(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """A run cut at UTC month boundaries, so monthly usage is exact."""
    pieces = []
    cursor = start
    while cursor < end:
        first_next = (
            cursor.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)
        ).replace(day=1)
        piece_end = min(end, first_next)
        pieces.append((period_of(cursor), cursor, piece_end))
        cursor = piece_end
    return pieces
