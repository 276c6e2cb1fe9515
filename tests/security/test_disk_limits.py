"""disk_gb is enforced (issue 16): an environment's root layer and /workspace share
one disk of that size; writing past it fails with ENOSPC inside, a bystander keeps
writing, the object's metrics report use and size, the files come back after a stop,
an unmounted disk (what a reboot leaves) and an archive, and a delete frees it.
Under runc and runsc. SQLite only: this is the engine's file system, not the database
(the metrics columns it adds are migrated and written on PostgreSQL by every other
metrics test)."""

import subprocess
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.factories import delete, running_env, stop, wait_state
from tests.support.inside import run, sh
from tests.support.polling import eventually

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
GIB = 1 << 30
#: Writes `$2` MiB of zeros to `$1`; prints dd's complaint (and exits 1) when it fails.
FILL = "dd if=/dev/zero of={path} bs=1M count={mib} 2>&1 >/dev/null | grep -i 'space' ; sync"


def _volume_dir(client: docker.DockerClient, env_id: str) -> Path:
    mountpoint = client.volumes.get(f"sandbay-ws-{env_id}").attrs["Mountpoint"]
    return Path(mountpoint).parent


def _fill(api: httpx.Client, env_id: str, path: str, mib: int) -> dict[str, Any]:
    return run(api, env_id, ["sh", "-c", FILL.format(path=path, mib=mib)])


def _mounts_of(vdir: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(vdir) in line.split()[4]]


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_writing_past_disk_gb_fails_with_enospc_and_nothing_else_is_touched(
    api: httpx.Client, docker_client: docker.DockerClient, runtime: str
) -> None:
    env = running_env(api, name=f"disk-{runtime}", disk_gb=1, runtime=runtime)
    bystander = running_env(api, name=f"disk-by-{runtime}")
    try:
        # df inside shows the disk's size for the root and for /workspace alike.
        sizes = sh(api, env["id"], "df -k / /workspace | awk 'NR>1 {print $2}'").split()
        assert len(sizes) == 2 and all(0.9 * GIB < int(s) * 1024 <= GIB for s in sizes), sizes
        # 600 MiB into /workspace fits; 600 more into the root layer does not.
        assert _fill(api, env["id"], "/workspace/a", 600)["stdout"] == ""
        failed = _fill(api, env["id"], "/root/b", 600)["stdout"]
        assert "No space left on device" in failed
        # The bystander writes as much as it likes meanwhile.
        assert _fill(api, bystander["id"], "/workspace/big", 1200)["stdout"] == ""
        # Space comes back when files go.
        sh(api, env["id"], "rm /root/b")
        assert _fill(api, env["id"], "/tmp/c", 300)["stdout"] == ""
    finally:
        delete(api, env["id"])
        delete(api, bystander["id"])


def test_metrics_report_use_and_size(api: httpx.Client) -> None:
    env = running_env(api, name="disk-metrics", disk_gb=2)
    try:
        assert _fill(api, env["id"], "/workspace/a", 300)["stdout"] == ""

        def reported() -> dict[str, Any] | None:
            m = api.get(f"/v1/environments/{env['id']}").json().get("metrics") or {}
            return m if (m.get("disk_used_bytes") or 0) >= 300 << 20 else None

        metrics = eventually(reported, timeout=30)
        assert 1.8 * GIB < metrics["disk_limit_bytes"] <= 2 * GIB
        assert metrics["disk_used_bytes"] < 400 << 20
        history = api.get(f"/v1/environments/{env['id']}/metrics").json()["data"]
        assert any((s.get("disk_used_bytes") or 0) >= 300 << 20 for s in history)
    finally:
        delete(api, env["id"])


def test_files_and_limit_survive_stop_a_lost_mount_and_archive(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="disk-keep", disk_gb=1)
    env_id = env["id"]
    try:
        sh(api, env_id, "echo ws > /workspace/w; mkdir -p /opt/k && echo root > /opt/k/r")
        stop(api, env_id)
        wait_state(api, env_id, "stopped")
        # What a reboot leaves: none of the disk's mounts.
        vdir = _volume_dir(docker_client, env_id)
        for target in sorted(_mounts_of(vdir), key=len, reverse=True):
            subprocess.run(["umount", target], check=True)
        assert _mounts_of(vdir) == []
        api.post(f"/v1/environments/{env_id}/start")
        wait_state(api, env_id, "running")
        assert sh(api, env_id, "cat /workspace/w /opt/k/r") == "ws\nroot\n"
        assert "No space left" in _fill(api, env_id, "/workspace/x", 1100)["stdout"]
        sh(api, env_id, "rm /workspace/x")
        stop(api, env_id)
        wait_state(api, env_id, "stopped")
        assert api.post(f"/v1/environments/{env_id}/archive").status_code == 200
        wait_state(api, env_id, "archived", timeout=120)
        # Archived: no container, no volume, no disk left on the engine.
        assert not vdir.exists() and _mounts_of(vdir) == []
        api.post(f"/v1/environments/{env_id}/start")
        wait_state(api, env_id, "running", timeout=120)
        assert sh(api, env_id, "cat /workspace/w /opt/k/r") == "ws\nroot\n"
        assert "No space left" in _fill(api, env_id, "/opt/x", 1100)["stdout"]
    finally:
        delete(api, env_id)
    # Deleted: the disk's file and every mount of it are gone.
    assert eventually(lambda: not vdir.exists() or None, timeout=30)
    assert _mounts_of(vdir) == []
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    assert str(vdir) not in loops
