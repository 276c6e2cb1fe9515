"""Live resource metrics: the raw counters a runtime samples from a container, and
the `ResourceMetrics` the API shows (the CamposCloud brief's `currentResourceMetrics`
in snake_case). CPU % is derived from two samples, so it is computed here, purely."""

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field


@dataclass(frozen=True, slots=True)
class ContainerSample:
    """Cumulative counters of one running container at one instant."""

    environment_id: str
    taken_at: datetime
    monotonic: float  # seconds, for rate computation independent of wall-clock jumps
    started_at: datetime | None
    cpu_ns: int  # CPU time used since the container started
    memory_bytes: int  # working set: usage minus inactive page cache, as `docker stats`
    memory_limit_bytes: int
    network_rx_bytes: int
    network_tx_bytes: int
    block_read_bytes: int
    block_write_bytes: int
    pids: int
    #: Processes the kernel's OOM killer ended in the container's cgroup since it
    #: started (cgroup `oom_kill` counter); None where the runtime cannot see it.
    oom_kills: int | None = None
    #: Its disk (root layer and /workspace) where the provider enforces disk_gb.
    disk_used_bytes: int | None = None
    disk_limit_bytes: int | None = None


def new_oom_kills(
    sample: ContainerSample, previous: ContainerSample | None, *, watching_since: datetime
) -> int:
    """OOM kills in `sample` not yet reported. A container first seen counts from its
    start only if it started while we watched (else kills of before a restart of the
    server would be reported again)."""
    if sample.oom_kills is None:
        return 0
    if previous is not None:
        return max(0, sample.oom_kills - (previous.oom_kills or 0))
    started = sample.started_at
    return sample.oom_kills if started is not None and started >= watching_since else 0


class ResourceMetrics(BaseModel):
    """One sample of an environment's resource use. `cpu_percent` is in percent of one
    CPU (a workload using a full 2-CPU limit shows 200)."""

    timestamp: datetime
    online: bool
    uptime_seconds: int
    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int
    network_rx_bytes: int
    network_tx_bytes: int
    pids: int
    block_read_bytes: int = 0
    block_write_bytes: int = 0
    disk_used_bytes: int | None = Field(
        None, description="Bytes used on its disk (root layer and /workspace); null: not limited"
    )
    disk_limit_bytes: int | None = Field(
        None, description="Size of its disk (disk_gb, less the file system's own); null: none"
    )


class MetricsHistory(BaseModel):
    data: list[ResourceMetrics] = Field(description="Oldest first")
    has_more: bool
    next_since: datetime | None = Field(None, description="Pass as `since` for the next page")


def cpu_percent(previous: ContainerSample | None, current: ContainerSample) -> float:
    """CPU use between two samples; from a first sample, the average since start."""
    if previous is not None and current.cpu_ns >= previous.cpu_ns:
        elapsed = current.monotonic - previous.monotonic
        if elapsed > 0:
            return round((current.cpu_ns - previous.cpu_ns) / (elapsed * 1e9) * 100, 2)
    if current.started_at is not None:
        elapsed = (current.taken_at - current.started_at).total_seconds()
        if elapsed > 0:
            return round(current.cpu_ns / (elapsed * 1e9) * 100, 2)
    return 0.0


def to_metrics(current: ContainerSample, previous: ContainerSample | None) -> ResourceMetrics:
    uptime = (current.taken_at - current.started_at).total_seconds() if current.started_at else 0.0
    return ResourceMetrics(
        timestamp=current.taken_at,
        online=True,
        uptime_seconds=max(0, int(uptime)),
        cpu_percent=cpu_percent(previous, current),
        memory_bytes=current.memory_bytes,
        memory_limit_bytes=current.memory_limit_bytes,
        network_rx_bytes=current.network_rx_bytes,
        network_tx_bytes=current.network_tx_bytes,
        pids=current.pids,
        block_read_bytes=current.block_read_bytes,
        block_write_bytes=current.block_write_bytes,
        disk_used_bytes=current.disk_used_bytes,
        disk_limit_bytes=current.disk_limit_bytes,
    )


def offline(at: datetime, memory_limit_bytes: int) -> ResourceMetrics:
    """What an environment whose workload is not running shows."""
    return ResourceMetrics(
        timestamp=at,
        online=False,
        uptime_seconds=0,
        cpu_percent=0.0,
        memory_bytes=0,
        memory_limit_bytes=memory_limit_bytes,
        network_rx_bytes=0,
        network_tx_bytes=0,
        pids=0,
    )


@dataclass(frozen=True, slots=True)
class InsideUsage:
    """What only the environment itself can tell: bytes its files take (the root
    file system and /workspace) and the page cache its memory cgroup holds."""

    disk_used_bytes: int
    memory_cache_bytes: int


#: Run as root inside the environment: `du` of / and /workspace (each on its own file
#: system), a separator, then the memory cgroup's stat file (v2, else v1).
USAGE_PROBE = [
    "/bin/sh",
    "-c",
    "du -skx / /workspace 2>/dev/null; echo --;"
    " cat /sys/fs/cgroup/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory/memory.stat",
]


def parse_usage(output: str) -> InsideUsage:
    """Read USAGE_PROBE's output (what it could not read counts as 0)."""
    disk, _, memory = output.partition("--")
    used_kib = sum(
        int(fields[0])
        for fields in (line.split() for line in disk.splitlines())
        if fields and fields[0].isdigit()
    )
    stat = {
        fields[0]: int(fields[1])
        for fields in (line.split() for line in memory.splitlines())
        if len(fields) == 2 and fields[1].isdigit()
    }
    # v2 names the page cache `file`; v1 `cache` (`total_cache` counting children).
    cache = stat.get("file", stat.get("total_cache", stat.get("cache", 0)))
    return InsideUsage(disk_used_bytes=used_kib * 1024, memory_cache_bytes=cache)


def thin(samples: list[ResourceMetrics], most: int) -> list[ResourceMetrics]:
    """At most `most` samples spread evenly over the list (first and last kept)."""
    if len(samples) <= most or most < 2:
        return samples[:most] if most < 2 else samples
    step = (len(samples) - 1) / (most - 1)
    return [samples[round(i * step)] for i in range(most)]
