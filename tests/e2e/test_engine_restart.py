"""Engine faults: `dockerd` restarted under a live server (what an engine upgrade or a
host reboot does). Environments the engine stopped keep their desired state and come
back to it with their files; only a workload's own exit counts as its exit; while the
engine is down, requests that need it answer 503 with `Retry-After` at once, and
operations made meanwhile converge, nothing lost or duplicated.

The machine's dockerd serves every other test, so this one starts a second engine of
its own (its own data root, exec root, socket, pid file and bridge, no iptables) and
restarts that one. On SQLite only: it exercises the engine; the reconciler's database
paths run on both databases in tests/e2e/test_crash_recovery.py and tests/reconciler."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.factories import create_env, events
from tests.support.inside import sh
from tests.support.polling import eventually
from tests.support.server import LiveServer

IMAGE = "sandbay-base:latest"
#: A workload that handles the stop signal and exits 0, and one the signal kills (143).
SERVE = "trap 'exit 0' TERM; while true; do sleep 0.2; done"
PLAIN = "while true; do sleep 0.2; done"


@dataclass
class SecondEngine:
    """A dockerd beside the machine's, restartable at will."""

    root: Path
    bridge: str
    subnet: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "dockerd",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'docker.pid'}",
                f"--host={self.host}",
                f"--bridge={self.bridge}",
                "--iptables=false",
                "--ip-masq=false",
                "--shutdown-timeout=15",
            ],
            stdout=(self.root / "dockerd.log").open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        eventually(self.answers, what="the second dockerd answering", timeout=60)

    def answers(self) -> bool:
        try:
            with contextlib.closing(docker.DockerClient(base_url=self.host, timeout=5)) as client:
                return bool(client.ping())
        except docker.errors.DockerException:
            return False

    def stop(self) -> None:
        """What a restart or an upgrade does: SIGTERM, and the engine stops every
        container (stop signal, then SIGKILL) before it exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(90)

    def client(self) -> contextlib.closing[docker.DockerClient]:
        return contextlib.closing(docker.DockerClient(base_url=self.host, timeout=60))


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def engine() -> Iterator[SecondEngine]:
    root = Path(tempfile.mkdtemp(prefix="sbd-", dir="/tmp"))  # a short socket path
    root.chmod(0o711)  # an engine remapping container root (userns-remap) traverses it
    tag = uuid.uuid4().hex[:6]
    second = SecondEngine(
        root=root,
        bridge=f"sbt{tag}",
        subnet=f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}",
    )
    _run("ip", "link", "add", second.bridge, "type", "bridge")
    try:
        # The host reaches each container's agent on this bridge (docs/envd.md).
        _run("ip", "addr", "add", f"{second.subnet}.1/24", "dev", second.bridge)
        _run("ip", "link", "set", second.bridge, "up")
        second.start()
        with contextlib.closing(docker.from_env()) as first, second.client() as client:
            client.images.load(b"".join(first.images.get(IMAGE).save(named=True)))
        yield second
    finally:
        with contextlib.suppress(Exception):
            if second.proc is not None and second.proc.poll() is None:
                with second.client() as client:
                    for c in client.containers.list(all=True):
                        c.remove(force=True, v=True)
        second.stop()
        if second.proc is not None and second.proc.poll() is None:
            os.killpg(second.proc.pid, signal.SIGKILL)
        subprocess.run(["ip", "link", "del", second.bridge], check=False, capture_output=True)
        subprocess.run(["umount", "-R", str(root / "data")], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _until_done(call: Any) -> httpx.Response:
    """A client that honours 503 + Retry-After, and retries a lost compare-and-set as
    its 409 says (the bound keeps a broken server from hanging the test)."""
    for _ in range(60):
        response: httpx.Response = call()
        if response.status_code == 409 and "try again" in response.text:
            continue
        if response.status_code != 503:
            return response
        assert "Retry-After" in response.headers, response.text
        time.sleep(min(float(response.headers["Retry-After"]), 1.0))
    raise AssertionError("still 503 after a minute")


def _env(api: httpx.Client, env_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/environments/{env_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _settled(api: httpx.Client, env_id: str, state: str) -> bool:
    env = _env(api, env_id)
    assert env["state"] != "error", env
    return bool(env["state"] == state and env["desired_state"] == state)


def _restarted_by_engine(api: httpx.Client, env_id: str) -> bool:
    """Running again after its engine stopped it (the database alone still says
    `running` until the server has looked at the engine)."""
    reasons = [e.get("reason") or "" for e in events(api, env_id)]
    assert not any("workload exited" in r for r in reasons), reasons
    return any("stopped by its engine" in r for r in reasons) and _settled(api, env_id, "running")


def test_engine_restart_brings_back_what_it_stopped(engine: SecondEngine, make_server: Any) -> None:
    live: LiveServer = make_server(postgres=False, extra_env={"SANDBAY_DOCKER_HOST": engine.host})
    live.start()
    with live.client() as api:
        running = [
            create_env(api, name=f"keep-{i}", command=(SERVE, PLAIN)[i % 2], memory_mb=64)["id"]
            for i in range(8)
        ]
        stopped = [
            create_env(api, name=f"idle-{i}", command=SERVE, memory_mb=64)["id"] for i in range(4)
        ]
        for env_id in running + stopped:
            eventually(partial(_settled, api, env_id, "running"), what=f"{env_id} running")
        for env_id in running:
            sh(api, env_id, f"echo {env_id} > /workspace/mine && echo root > /root/layer")
        for env_id in stopped:
            assert api.post(f"/v1/environments/{env_id}/stop").status_code == 200
            eventually(partial(_settled, api, env_id, "stopped"), what=f"{env_id} stopped")

        engine.stop()

        # Down: what needs the engine is a quick 503 with Retry-After, in each envelope;
        # what does not still answers.
        down = api.post(f"/v1/environments/{running[0]}/exec", json={"command": "true"})
        assert down.status_code == 503, down.text
        assert int(down.headers["Retry-After"]) > 0
        assert down.json()["error"]["type"] == "engine_unavailable"
        toolbox = api.post(
            f"/toolbox/{running[0]}/process/execute",
            json={"command": "true"},
            headers={"Authorization": f"Bearer {live.key}"},
        )
        assert toolbox.status_code == 503, toolbox.text
        assert toolbox.headers["Retry-After"] and toolbox.json()["statusCode"] == 503
        assert _env(api, running[0])["desired_state"] == "running"

        # Twelve operations while the engine is down and while it comes back.
        def operate(op: tuple[str, str]) -> tuple[int, str]:
            kind, target = op
            with live.client() as c:
                if kind == "create":
                    call = lambda: c.post(  # noqa: E731
                        "/v1/environments", json={"name": target, "command": SERVE, "memory_mb": 64}
                    )
                else:
                    call = lambda: c.post(f"/v1/environments/{target}/{kind}")  # noqa: E731
                done = _until_done(call)
                return done.status_code, done.text

        ops = [("stop", e) for e in running[4:]] + [("start", e) for e in stopped]
        ops += [("create", f"born-{i}") for i in range(4)]
        with ThreadPoolExecutor(max_workers=len(ops)) as pool:
            pending = [pool.submit(operate, op) for op in ops]
            eventually(
                lambda: _env(api, stopped[0])["desired_state"] == "running",
                what="a start recorded while the engine is down",
            )
            engine.start()
            answers = [f.result() for f in pending]
        codes = [code for code, _ in answers]
        assert sorted(codes) == sorted([200] * 8 + [201] * 4), answers

        # Back: each environment converges to what its user wanted, files intact.
        listed = api.get("/v1/environments", params={"limit": 100}).json()["data"]
        born = [e["id"] for e in listed if e["name"].startswith("born-")]
        assert len(born) == 4, [e["name"] for e in listed]  # none lost, none twice
        for env_id in running[:4] + stopped + born:
            eventually(partial(_settled, api, env_id, "running"), what=f"{env_id} back")
        for env_id in running[4:]:
            eventually(partial(_settled, api, env_id, "stopped"), what=f"{env_id} stopped")
        for env_id in running[:4]:
            assert sh(api, env_id, "cat /workspace/mine /root/layer") == f"{env_id}\nroot\n"
            reasons = [e.get("reason") or "" for e in events(api, env_id)]
            assert any("stopped by its engine" in r for r in reasons), reasons
            assert not any("workload exited" in r for r in reasons), reasons
        with engine.client() as client:
            names = [str(c.name) for c in client.containers.list(all=True)]
        assert sorted(names) == sorted(f"sandbay-{e}" for e in running + stopped + born)

        # With the engine up, a workload's own exit is still its exit.
        own = create_env(api, name="own-exit", command="sleep 1; exit 143", memory_mb=64)["id"]
        eventually(lambda: _env(api, own)["state"] == "error", what="its own exit recorded")
        assert _env(api, own)["desired_state"] == "stopped"


def test_engine_restarted_while_the_server_was_down(engine: SecondEngine, make_server: Any) -> None:
    """A host reboot: the server and its engine go down together. The server, back,
    has seen no outage; the engine's start time tells what its predecessor stopped."""
    live: LiveServer = make_server(postgres=False, extra_env={"SANDBAY_DOCKER_HOST": engine.host})
    live.start()
    with live.client() as api:
        running = [
            create_env(api, name=f"keep-{i}", command=PLAIN, memory_mb=64)["id"] for i in range(3)
        ]
        idle = create_env(api, name="idle", command=PLAIN, memory_mb=64)["id"]
        for env_id in [*running, idle]:
            eventually(partial(_settled, api, env_id, "running"), what=f"{env_id} running")
        for env_id in running:
            sh(api, env_id, f"echo {env_id} > /workspace/mine")
        assert api.post(f"/v1/environments/{idle}/stop").status_code == 200
        eventually(lambda: _settled(api, idle, "stopped"), what="idle stopped")
    live.stop()
    engine.stop()
    engine.start()
    live.start()
    with live.client() as api:
        for env_id in running:
            eventually(partial(_restarted_by_engine, api, env_id), what=f"{env_id} back")
            assert sh(api, env_id, "cat /workspace/mine") == f"{env_id}\n"
        assert _settled(api, idle, "stopped")
