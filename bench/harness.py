"""Measuring: timers, statistics, the servers under test, the raw Docker baseline
with the very options sandbay uses, where an environment's agent listens, what a
process costs (/proc), and the load generator (wrk)."""

import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
from tests.support.server import LiveServer, new_server, remove_engine_objects

from sandbay.runtime.docker.names import CAPABILITIES, TOKEN_VAR, remapped, userns_mode
from sandbay.runtime.envd.channel import PORT as AGENT_PORT
from sandbay.settings import MetricsSettings, ReconcilerSettings, env_name

IMAGE = "sandbay-base:latest"
MIB = 1024 * 1024


@dataclass
class Samples:
    """Latencies of one operation, in milliseconds."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds * 1000)

    def pct(self, p: float) -> float:
        ordered = sorted(self.values)
        if not ordered:
            return float("nan")
        k = (len(ordered) - 1) * p / 100
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    def summary(self) -> dict[str, float]:
        return {
            "n": len(self.values),
            "min_ms": min(self.values),
            "p50_ms": self.pct(50),
            "p95_ms": self.pct(95),
            "max_ms": max(self.values),
            "stdev_ms": statistics.pstdev(self.values),
        }


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def sandbay_server(**extra_env: str) -> Iterator[LiveServer]:
    """A server as `make run` starts it (SQLite, local Docker, the default intervals
    rather than the test suite's fast ones), on a free port."""
    reconciler, metrics = ReconcilerSettings(), MetricsSettings()  # their defaults
    defaults = {
        env_name("reconciler", "interval"): str(reconciler.interval),
        env_name("reconciler", "policy_interval"): str(reconciler.policy_interval),
        env_name("reconciler", "drift_interval"): str(reconciler.drift_interval),
        env_name("metrics", "interval"): str(metrics.interval),
    }
    with tempfile.TemporaryDirectory(prefix="sandbay-bench-") as tmp:
        live = new_server(
            Path(tmp), extra_env={"SANDBAY_LOG_LEVEL": "warning", **defaults, **extra_env}
        )
        live.start()
        try:
            yield live
        finally:
            live.stop()
            remove_engine_objects(live.instance)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def private_kb(pid: int) -> int:
    """The part of a process's resident memory no other process shares."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass(frozen=True)
class Container:
    """What one inspect tells about a running container: its PID 1 on this host, its
    address on the engine's network, and its agent's token (empty without one)."""

    pid: int
    host: str
    token: str

    @property
    def agent(self) -> tuple[str, int]:
        return self.host, AGENT_PORT


class RawDocker:
    """The same engine work sandbay does, straight through the Docker SDK: the floor."""

    def __init__(self) -> None:
        self.client = docker.from_env(version="auto", max_pool_size=64)
        self.api = self.client.api
        self.label = f"sandbay-bench-raw-{os.getpid()}"
        self._n = 0
        self._remapped = remapped(self.client.info())

    def run(self, command: list[str] | None = None, runtime: str | None = None) -> str:
        """create volume + create container + start (what `docker run -d` does), under
        `runtime` if given (`--runtime`), else the engine's default."""
        self._n += 1
        name = f"{self.label}-{self._n}"
        labels = {"sandbay.bench": self.label}
        self.api.create_volume(name=name, labels=labels)
        host = self.api.create_host_config(
            init=True,
            cap_drop=["ALL"],
            cap_add=CAPABILITIES,
            security_opt=["no-new-privileges:true"],
            pids_limit=4096,
            mem_limit=1024 * MIB,
            memswap_limit=1024 * MIB,
            nano_cpus=1_000_000_000,
            binds={name: {"bind": "/workspace", "mode": "rw"}},
            runtime=runtime,
            userns_mode=userns_mode(runtime, self._remapped),
        )
        self.api.create_container(
            IMAGE,
            name=name,
            entrypoint=command or ["sleep", "infinity"],
            labels=labels,
            host_config=host,
            working_dir="/workspace",
        )
        self.api.start(name)
        return name

    def kill(self, name: str) -> None:
        """SIGKILL, then wait until it has stopped."""
        self.api.kill(name)
        self.api.wait(name)

    def remove(self, name: str) -> None:
        self.api.remove_container(name, force=True)
        self.api.remove_volume(name, force=True)

    def runtimes(self) -> set[str]:
        """The runtimes the engine has registered (`runsc` once `make setup` ran)."""
        return set(self.client.info().get("Runtimes") or {"runc": {}})

    def inspect(self, name: str) -> Container:
        """Any container of this engine (sandbay's `sandbay-<env id>` too)."""
        raw = self.api.inspect_container(name)
        env = raw["Config"].get("Env") or []
        token = next((e.split("=", 1)[1] for e in env if e.startswith(f"{TOKEN_VAR}=")), "")
        networks = (raw["NetworkSettings"].get("Networks") or {}).values()
        host = next((n["IPAddress"] for n in networks if n.get("IPAddress")), "")
        return Container(pid=int(raw["State"]["Pid"]), host=host, token=token)

    @staticmethod
    def cp(source: str, destination: str) -> None:
        """`docker cp` itself (the CLI, a file on disk), into or out of a container."""
        subprocess.run(["docker", "cp", source, destination], check=True, capture_output=True)

    def cleanup(self) -> None:
        for c in self.api.containers(all=True, filters={"label": f"sandbay.bench={self.label}"}):
            self.api.remove_container(c["Id"], force=True)
        for v in self.client.volumes.list(filters={"label": f"sandbay.bench={self.label}"}):
            v.remove(force=True)
        self.client.close()


class Api:
    """A keep-alive client of the server under test."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url, headers={"X-API-KEY": server.key}, timeout=300
        )

    def create(self, **fields: Any) -> dict[str, Any]:
        answer = self.http.post("/v1/environments", json=fields)
        answer.raise_for_status()
        return dict(answer.json())

    def wait(self, env_id: str, state: str) -> None:
        answer = self.http.get(
            f"/v1/environments/{env_id}/wait", params={"state": state, "timeout": 300}
        )
        answer.raise_for_status()

    def post(self, path: str, json: Any = None) -> None:
        self.http.post(path, json=json).raise_for_status()

    def delete(self, env_id: str) -> None:
        self.http.delete(f"/v1/environments/{env_id}").raise_for_status()
        self.wait(env_id, "deleted")

    def has(self, path: str) -> bool:
        return path in self.http.get("/openapi.json").json()["paths"]


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_PCT = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(url: str, key: str, *, seconds: int, connections: int = 16) -> dict[str, float]:
    """Requests/s and latency percentiles from wrk on 127.0.0.1."""
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-H", f"X-API-KEY: {key}", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = {f"p{p}_ms": float(v) * scale[u] for p, v, u in _WRK_PCT.findall(out)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = _WRK_RPS.search(out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        **pct,
    }
