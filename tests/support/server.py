"""A real sandbay server in a subprocess (real HTTP, real Docker, real database),
and the clean-up of every container and volume it made."""

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx

from sandbay.runtime.docker import disks

ADMIN_KEY = "sbk_admin_" + "a" * 32


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range (32768 and up) so no
    outgoing connection takes it before the server binds it, and never one this
    process handed out already (two servers or a server's two listeners)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000")


@dataclass
class LiveServer:
    data_dir: Path
    instance: str
    key: str
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    ssh_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: `serve`, or `reconciler` (the loops alone: no HTTP; ready once it logs so).
    role: str = "serve"

    @property
    def scheme(self) -> str:
        return "https" if "SANDBAY_TLS_CERT" in self.extra_env else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBAY_")}
        env.update(
            SANDBAY_DATA_DIR=str(self.data_dir),
            SANDBAY_BOOTSTRAP_KEY=self.key,
            SANDBAY_ADMIN_KEY=ADMIN_KEY,
            SANDBAY_INSTANCE=self.instance,
            SANDBAY_RECONCILER__INTERVAL="0.5",
            SANDBAY_RECONCILER__POLICY_INTERVAL="0.5",
            SANDBAY_RECONCILER__DRIFT_INTERVAL="0.5",
            SANDBAY_METRICS__INTERVAL="1",
            SANDBAY_LOG_LEVEL="info",
            # Every server its own SSH gateway port: servers run side by side.
            SANDBAY_SSH__PORT=str(self.ssh_port),
        )
        if self.database_url:
            env["SANDBAY_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> "LiveServer":
        self.port = self.port or free_port()
        self.ssh_port = self.ssh_port or free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [sys.executable, "-m", "sandbay", self.role]
        if self.role == "serve":
            argv += ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv,
            env=self.environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.tail()}")
            if self.role != "serve":
                with self.log_path.open("rb") as written:
                    written.seek(offset)
                    if re.search(rb"(ready|running) \(instance", written.read()):
                        return self
                time.sleep(0.1)
                continue
            try:
                # A TLS server's certificate is the test's to check, not the probe's.
                probe = httpx.get(f"{self.url}/healthz", timeout=1, verify=False)  # noqa: S501
                if probe.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up: {self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_bytes(self) -> int:
        """Resident memory of the server process, from /proc."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def kill9(self) -> None:
        """Crash the server: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {} if key == "" else {"X-API-KEY": key or self.key}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)  # type: ignore[arg-type]


def new_server(base: Path, **kwargs: object) -> LiveServer:
    instance = f"test-{uuid.uuid4().hex[:10]}"
    key = "sbk_org_" + uuid.uuid4().hex
    return LiveServer(data_dir=base / instance, instance=instance, key=key, **kwargs)  # type: ignore[arg-type]


def engine_objects(instance: str) -> tuple[list[str], list[str]]:
    """Names of containers and volumes the engine holds for `instance`, sorted (the
    engine lists volumes in no stable order)."""
    client = docker.from_env()
    try:
        label = f"sandbay.instance={instance}"
        containers = sorted(
            c["Names"][0] for c in client.api.containers(all=True, filters={"label": label})
        )
        volumes = sorted(v.name for v in client.volumes.list(filters={"label": label}))
        return containers, volumes
    finally:
        client.close()


def remove_engine_objects(instance: str) -> None:
    client = docker.from_env()
    try:
        label = f"sandbay.instance={instance}"
        for c in client.api.containers(all=True, filters={"label": label}):
            # The server's last delete may be removing it right now.
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(c["Id"], force=True)
        for v in client.volumes.list(filters={"label": label}):
            # An environment's disk is mounted on its volume: unmounted first.
            disks.detach(disks.volume_dir(v.attrs["Mountpoint"]))
            v.remove(force=True)
    finally:
        client.close()
