"""Issue 19's measurements: pause/resume, snapshot and fork, wake on request, and the
restore of an archive, each beside the raw engine (or the raw copy) doing the same
work in the same run."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Api, RawDocker, Samples, timed
from bench.ops import Pair, _act, http_get_new_connection
from sandbay.runtime.docker.names import volume_name

PORT = 8000
SERVE = ["python3", "-m", "http.server", str(PORT)]


def _until(check: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen in {timeout:g}s")
        time.sleep(0.01)


def _answers(address: tuple[str, int], path: str) -> bool:
    try:
        return http_get_new_connection(address, path) == 200
    except OSError:
        return False


def _volume_dir(raw: RawDocker, env_id: str) -> Path:
    return Path(raw.api.inspect_volume(volume_name(env_id))["Mountpoint"])


def _fill(api: Api, env_id: str, size_mb: int) -> None:
    """`size_mb` of random bytes in /workspace, and a file in the root layer."""
    command = (
        f"head -c {size_mb}M /dev/urandom > /workspace/blob && echo layer > /opt/layer && sync"
    )
    answer = api.http.post(
        f"/v1/environments/{env_id}/exec", json={"command": command, "timeout": 600}
    )
    answer.raise_for_status()
    assert answer.json()["exit_code"] == 0, answer.text


def pause_resume(api: Api, raw: RawDocker, n: int) -> dict[str, Pair]:
    """pause → paused and resume → running through the API, against `docker pause`
    and `docker unpause` of a raw container."""
    env = api.create()
    api.wait(env["id"], "running")
    name = raw.run()
    ours = {"pause": Samples(), "resume": Samples()}
    base = {"pause": Samples(), "resume": Samples()}
    for _ in range(n):
        ours["pause"].add(timed(_act(api, env["id"], "pause", "paused")))
        ours["resume"].add(timed(_act(api, env["id"], "resume", "running")))
        base["pause"].add(timed(lambda: raw.api.pause(name)))
        base["resume"].add(timed(lambda: raw.api.unpause(name)))
    api.delete(env["id"])
    raw.remove(name)
    engine = {"pause": "docker pause", "resume": "docker unpause"}
    return {k: {"sandbay": ours[k], "baseline": base[k], "baseline_name": engine[k]} for k in ours}


def _snapshot_ready(api: Api, snapshot_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        found.update(api.http.get(f"/v1/snapshots/{snapshot_id}").json())
        if found["state"] == "failed":
            raise RuntimeError(f"snapshot failed: {found.get('error')}")
        return bool(found["state"] == "ready")

    _until(ready, "the snapshot")
    return found


def snapshot_fork(api: Api, raw: RawDocker, size_mb: int) -> dict[str, Pair]:
    """Snapshot of a running environment holding `size_mb` in /workspace (until
    `ready`), and one fork of it (until the fork runs), against copying the same
    workspace on the host (`cp -a`) and `docker run` + that copy."""
    env = api.create(disk_gb=max(2, size_mb // 512 + 2))
    api.wait(env["id"], "running")
    _fill(api, env["id"], size_mb)
    source = _volume_dir(raw, env["id"])
    snap, fork, copy, run_copy = Samples(), Samples(), Samples(), Samples()
    frozen: list[float] = []
    snapshot: dict[str, Any] = {}

    def take() -> None:
        answer = api.http.post(f"/v1/environments/{env['id']}/snapshots", json={})
        answer.raise_for_status()
        snapshot.update(_snapshot_ready(api, answer.json()["id"]))

    forked: list[str] = []

    def fork_one() -> None:
        answer = api.http.post(f"/v1/environments/{env['id']}/fork", json={"count": 1})
        answer.raise_for_status()
        fork_id = answer.json()["environments"][0]["id"]
        forked.append(fork_id)
        api.wait(fork_id, "running")

    with tempfile.TemporaryDirectory(prefix="sandbay-bench-snap-", dir="/var/tmp") as tmp:
        for i in range(2):
            snap.add(timed(take))
            frozen.append(float(snapshot.get("frozen_ms") or 0.0))
            api.http.delete(f"/v1/snapshots/{snapshot['id']}").raise_for_status()
            fork.add(timed(fork_one))
            dest = Path(tmp, f"copy-{i}")
            copy.add(timed(lambda d=dest: _cp(source, d)))  # type: ignore[misc]
            shutil.rmtree(dest, ignore_errors=True)

            def run_and_copy() -> None:
                name = raw.run()
                _cp(source, _volume_dir_of(raw, name))

            run_copy.add(timed(run_and_copy))
    for fork_id in forked:
        api.delete(fork_id)
    api.delete(env["id"])
    return {
        f"snapshot_{size_mb}mb": {
            "sandbay": snap, "baseline": copy, "baseline_name": "cp -a of the workspace",
            "metrics": {"frozen_ms": max(frozen)},
        },
        f"fork_{size_mb}mb": {
            "sandbay": fork, "baseline": run_copy, "baseline_name": "docker run + cp -a",
        },
    }  # fmt: skip


def _cp(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", f"{source}/.", str(dest)], check=True)


def _volume_dir_of(raw: RawDocker, name: str) -> Path:
    return Path(raw.api.inspect_volume(name)["Mountpoint"])


def wake(api: Api, raw: RawDocker, n: int) -> Pair:
    """A stopped `wake_on_request` environment serving HTTP: the first preview request
    until its answer (the wake inside it), against `docker start` of a raw container
    running the same server and polling its port until it answers. A plain sandbay
    start (start, wait, poll) is reported beside."""
    env = api.create(command=SERVE, public=True, wake_on_request=True)
    env_id = env["id"]
    api.wait(env_id, "running")
    proxy = ("127.0.0.1", api.server.port)
    path = f"/preview/{env_id}/{PORT}/"
    _until(lambda: _answers(proxy, path), "the preview")
    name = raw.run(SERVE)
    ours, plain, base = Samples(), Samples(), Samples()
    for _ in range(n):
        _act(api, env_id, "stop", "stopped")()

        def first_byte() -> None:
            assert http_get_new_connection(proxy, path) == 200

        ours.add(timed(first_byte))
        _act(api, env_id, "stop", "stopped")()

        def start_then_poll() -> None:
            _act(api, env_id, "start", "running")()
            _until(lambda: _answers(proxy, path), "the preview")

        plain.add(timed(start_then_poll))
        raw.kill(name)

        def docker_start() -> None:
            raw.api.start(name)
            address = (raw.inspect(name).host, PORT)
            _until(lambda: _answers(address, "/"), "the raw server")

        base.add(timed(docker_start))
    api.delete(env_id)
    raw.remove(name)
    return {
        "sandbay": ours, "baseline": base, "baseline_name": "docker start + poll the port",
        "metrics": {"plain_start_p50_ms": plain.pct(50)},
    }  # fmt: skip


def archive_restore(api: Api, raw: RawDocker, size_mb: int) -> Pair:
    """Start of an archived environment holding `size_mb` until `running`, against
    extracting the same archive's tarballs with `tar -x` on the host."""
    env = api.create(disk_gb=max(2, size_mb // 512 + 2))
    env_id = env["id"]
    api.wait(env_id, "running")
    _fill(api, env_id, size_mb)
    ours, base = Samples(), Samples()
    store = api.server.data_dir / "archives"
    for _ in range(2):
        _act(api, env_id, "archive", "archived")()
        with tempfile.TemporaryDirectory(prefix="sandbay-bench-tar-", dir="/var/tmp") as tmp:
            kept = Path(tmp, "archive")
            shutil.copytree(store / env_id, kept)
            subprocess.run(["sync"], check=True)
            ours.add(timed(_act(api, env_id, "start", "running")))
            out = Path(tmp, "out")
            base.add(timed(lambda: _extract(kept, out)))
    api.delete(env_id)
    return {"sandbay": ours, "baseline": base, "baseline_name": "tar -x of the same archive"}


def _extract(archive: Path, out: Path) -> None:
    for tarball in sorted(archive.glob("*.tar*")):
        dest = out / tarball.name.split(".")[0]
        dest.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-f", str(tarball), "-C", str(dest)], check=True)
