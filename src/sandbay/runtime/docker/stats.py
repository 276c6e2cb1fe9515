"""Samples running containers' resource use. When the engine runs on this host (its
containers' /proc entries are visible) the counters are read straight from the
cgroup files and /proc/<pid>/net/dev: a few small reads per container, all in one
thread hop. Otherwise, or for a container whose files cannot be read, the engine's
one-shot stats API is used; it costs the engine far more (about a second of its
collector's time per container on Docker 20.10), hence the preference."""

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbay.domain.errors import RuntimeFailure
from sandbay.domain.metrics import ContainerSample
from sandbay.domain.states import OOM_EXIT_CODE
from sandbay.runtime.docker import disks
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.names import LABEL_ENV, LABEL_INSTANCE

log = logging.getLogger(__name__)
_UNLIMITED = 1 << 62
_API_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class _Known:
    """What one inspect told about a running container (kept until it restarts)."""

    environment_id: str
    pid: int
    started_at: datetime | None


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    micro = int((frac + "000000")[:6]) if frac else 0
    return datetime.fromisoformat(head).replace(microsecond=micro, tzinfo=UTC)


def _cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, tuple[str, str]]:
    """Controller (or "" for cgroup2) → (mount root, mount point)."""
    mounts: dict[str, tuple[str, str]] = {}
    with contextlib.suppress(OSError), open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            if tail[0] == "cgroup2":
                mounts.setdefault("", (fields[3], fields[4]))
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    mounts.setdefault(option, (fields[3], fields[4]))
    return mounts


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _int(path: str) -> int:
    text = _read(path).strip()
    return _UNLIMITED if text == "max" else int(text)


def _keyed(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


class _CgroupReader:
    """Counters of one container from the cgroup filesystem (v1 or v2)."""

    def __init__(self) -> None:
        self.mounts = _cgroup_mounts()
        self.host_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def _dirs(self, pid: int, container_id: str) -> dict[str, str]:
        dirs: dict[str, str] = {}
        for line in _read(f"/proc/{pid}/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            if container_id not in path:
                raise OSError("pid no longer belongs to the container")
            for controller in controllers.split(",") if controllers else [""]:
                if controller in self.mounts:
                    root, point = self.mounts[controller]
                    rel = path[len(root) :] if root != "/" and path.startswith(root) else path
                    dirs[controller] = point + rel
        return dirs

    def read(self, known: _Known, container_id: str, now: datetime, mono: float) -> ContainerSample:
        d = self._dirs(known.pid, container_id)
        if "memory" in d:  # cgroup v1
            cpu = _int(f"{d['cpuacct']}/cpuacct.usage")
            stat = _keyed(f"{d['memory']}/memory.stat")
            memory = _int(f"{d['memory']}/memory.usage_in_bytes") - stat.get(
                "total_inactive_file", 0
            )
            limit = _int(f"{d['memory']}/memory.limit_in_bytes")
            oom_kills = _keyed(f"{d['memory']}/memory.oom_control").get("oom_kill")
            pids = _int(f"{d['pids']}/pids.current")
            read = write = 0
            for line in _read(f"{d['blkio']}/blkio.throttle.io_service_bytes_recursive").split(
                "\n"
            ):
                parts = line.split()
                if len(parts) == 3 and parts[1] in ("Read", "Write"):
                    if parts[1] == "Read":
                        read += int(parts[2])
                    else:
                        write += int(parts[2])
        else:  # cgroup v2
            u = d[""]
            cpu = _keyed(f"{u}/cpu.stat").get("usage_usec", 0) * 1000
            memory = _int(f"{u}/memory.current") - _keyed(f"{u}/memory.stat").get(
                "inactive_file", 0
            )
            limit = _int(f"{u}/memory.max")
            oom_kills = _keyed(f"{u}/memory.events").get("oom_kill")
            pids = _int(f"{u}/pids.current")
            read = write = 0
            for line in _read(f"{u}/io.stat").splitlines():
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    read += int(value) if key == "rbytes" else 0
                    write += int(value) if key == "wbytes" else 0
        rx = tx = 0
        for line in _read(f"/proc/{known.pid}/net/dev").splitlines()[2:]:
            name, _, counters = line.partition(":")
            values = counters.split()
            if name.strip() != "lo" and len(values) >= 9:
                rx += int(values[0])
                tx += int(values[8])
        return ContainerSample(
            environment_id=known.environment_id,
            taken_at=now,
            monotonic=mono,
            started_at=known.started_at,
            cpu_ns=cpu,
            memory_bytes=max(0, memory),
            memory_limit_bytes=limit if limit < _UNLIMITED else self.host_memory,
            network_rx_bytes=rx,
            network_tx_bytes=tx,
            block_read_bytes=read,
            block_write_bytes=write,
            pids=pids,
            oom_kills=oom_kills,
        )


def _from_api(known: _Known, raw: dict[str, Any], now: datetime, mono: float) -> ContainerSample:
    memory = raw.get("memory_stats") or {}
    stats = memory.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    networks = (raw.get("networks") or {}).values()
    blkio = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return ContainerSample(
        environment_id=known.environment_id,
        taken_at=now,
        monotonic=mono,
        started_at=known.started_at,
        cpu_ns=int(((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)),
        memory_bytes=max(0, int(memory.get("usage", 0)) - int(inactive)),
        memory_limit_bytes=int(memory.get("limit", 0)),
        network_rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks),
        network_tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks),
        block_read_bytes=sum(int(e["value"]) for e in blkio if e.get("op", "").lower() == "read"),
        block_write_bytes=sum(int(e["value"]) for e in blkio if e.get("op", "").lower() == "write"),
        pids=int((raw.get("pids_stats") or {}).get("current", 0)),
    )


class DockerStats:
    """`MetricsSource` over the Docker Engine: cgroup files when local, else the API."""

    def __init__(
        self, engine: Engine, *, use_cgroups: bool = True, disk_root: Path | None = None
    ) -> None:
        self._engine = engine
        #: Where environments' disks are (runtime/docker/disks), when they have them.
        self._disk_root = disk_root
        self._cgroups = _CgroupReader() if use_cgroups else None
        self._known: dict[str, _Known] = {}
        self._api_only: set[str] = set()
        self._oom_exits: list[str] = []

    def _running(self, instance: str) -> list[tuple[str, str]]:
        rows = self._engine.api.containers(
            filters={"label": f"{LABEL_INSTANCE}={instance}", "status": "running"}
        )
        return [(r["Id"], (r.get("Labels") or {}).get(LABEL_ENV, "")) for r in rows]

    async def _learn(self, container_id: str, environment_id: str) -> None:
        try:
            raw = await self._engine.run(self._engine.api.inspect_container, container_id)
        except RuntimeFailure:
            return  # gone meanwhile
        state = raw.get("State") or {}
        if state.get("Running"):
            self._known[container_id] = _Known(
                environment_id, int(state.get("Pid") or 0), _parse_time(state.get("StartedAt"))
            )

    def _read_local(self, ids: list[str]) -> tuple[list[ContainerSample], list[str]]:
        """All cgroup reads in one thread hop; what could not be read is returned."""
        samples, missed = [], []
        for container_id in ids:
            now, mono = datetime.now(UTC), time.monotonic()
            try:
                assert self._cgroups is not None
                samples.append(
                    self._cgroups.read(self._known[container_id], container_id, now, mono)
                )
            except (OSError, KeyError, ValueError, IndexError):
                missed.append(container_id)
        return samples, missed

    async def _read_api(
        self, container_id: str, limit: asyncio.Semaphore
    ) -> ContainerSample | None:
        async with limit:
            try:
                raw = await self._engine.run(
                    self._engine.api.stats, container_id, stream=False, one_shot=True
                )
            except RuntimeFailure:
                return None
        return _from_api(self._known[container_id], raw, datetime.now(UTC), time.monotonic())

    async def _recheck(self, missed: list[str], running: dict[str, str]) -> None:
        """A container whose files could not be read either restarted (new pid: read
        it next time) or is not local (same pid: use the API from now on)."""
        for cid in missed:
            old = self._known.pop(cid, None)
            await self._learn(cid, running[cid])
            new = self._known.get(cid)
            if old is not None and new is not None and new.pid == old.pid:
                self._api_only.add(cid)

    async def _ended(self, container_id: str, environment_id: str) -> None:
        """A container that stopped running: note it if the OOM killer ended it."""
        try:
            raw = await self._engine.run(self._engine.api.inspect_container, container_id)
        except RuntimeFailure:
            return  # removed meanwhile: nothing left to tell
        state = raw.get("State") or {}
        # The flag stays set after any kill in the container: the workload was the
        # victim only if it died of SIGKILL (128 + 9).
        if (
            state.get("OOMKilled")
            and state.get("ExitCode") == OOM_EXIT_CODE
            and not state.get("Running")
        ):
            self._oom_exits.append(environment_id)

    def take_oom_exits(self) -> list[str]:
        taken, self._oom_exits = self._oom_exits, []
        return taken

    async def sample(self, instance: str) -> list[ContainerSample]:
        running = dict(await self._engine.run(self._running, instance))
        for cid in set(self._known) - set(running):
            await self._ended(cid, self._known.pop(cid).environment_id)
        self._api_only &= set(running)
        await asyncio.gather(
            *(self._learn(c, e) for c, e in running.items() if c not in self._known)
        )
        samples: list[ContainerSample] = []
        missed: list[str] = []
        if self._cgroups is not None:
            local = [c for c in running if c in self._known and c not in self._api_only]
            samples, missed = await self._engine.run(self._read_local, local)
            await self._recheck(missed, running)
        remote = [
            c
            for c in running
            if c in self._known and (self._cgroups is None or c in self._api_only or c in missed)
        ]
        limit = asyncio.Semaphore(_API_CONCURRENCY)
        extra = await asyncio.gather(*(self._read_api(c, limit) for c in remote))
        taken = samples + [s for s in extra if s is not None]
        if self._disk_root is None:
            return taken
        return await asyncio.to_thread(self._with_disks, taken)

    def _with_disks(self, samples: list[ContainerSample]) -> list[ContainerSample]:
        """Each sample with its disk's use (one statvfs each)."""
        assert self._disk_root is not None
        out = []
        for sample in samples:
            use = disks.usage(disks.of(self._disk_root, sample.environment_id))
            if use is not None:
                sample = replace(
                    sample, disk_used_bytes=use.used_bytes, disk_limit_bytes=use.limit_bytes
                )
            out.append(sample)
        return out
