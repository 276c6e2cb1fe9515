"""Container root is not host root (issue 16): the engine set up by `make setup`
remaps it (`userns-remap`), so root inside a runc environment is an unprivileged uid
on the host, for its processes and for the files it writes; ownership inside stays
exact, through stop/start and through an archive and its restore. Under runsc the
workload's root is gVisor's (its kernel, not the host's); that runsc cannot start
in a remapped namespace, so it runs outside it (docs/isolation.md).

SQLite only: this is the engine's configuration, not the database."""

import os
from pathlib import Path

import docker
import httpx
import pytest

from tests.support.factories import delete, running_env, stop, wait_state
from tests.support.inside import sh

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
#: Files owned by root, by a user and by a group inside, with a setgid directory.
OWNED = (
    "mkdir -p /workspace/own /opt/own && chmod 2775 /workspace/own"
    " && for d in /workspace/own /opt/own; do"
    " touch $d/root $d/user && chown 1000:1001 $d/user && chmod 640 $d/user; done"
)
STAT = "stat -c '%n %u %g %a' /workspace/own /workspace/own/* /opt/own/*"


def test_the_engine_remaps_container_root(docker_client: docker.DockerClient) -> None:
    options = docker_client.info().get("SecurityOptions") or []
    assert any("name=userns" in o for o in options), (
        f"the engine does not remap container root ({options}): run `make setup` "
        "(SANDBAY_USERNS_REMAP, docs/isolation.md)"
    )


def test_root_inside_is_an_unprivileged_host_uid(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="userns")
    try:
        assert sh(api, env["id"], "id -u") == "0\n"
        inside_map = sh(api, env["id"], "cat /proc/self/uid_map").split()
        assert inside_map[0] == "0" and int(inside_map[1]) > 0, inside_map
        pid = docker_client.api.inspect_container(f"sandbay-{env['id']}")["State"]["Pid"]
        host_uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4]
        assert all(int(u) == int(inside_map[1]) for u in host_uids), host_uids
        sh(api, env["id"], "touch /workspace/by-root")
        mountpoint = docker_client.volumes.get(f"sandbay-ws-{env['id']}").attrs["Mountpoint"]
        assert os.stat(f"{mountpoint}/by-root").st_uid == int(inside_map[1])
    finally:
        delete(api, env["id"])


def test_ownership_inside_is_exact_across_stop_archive_and_restore(api: httpx.Client) -> None:
    env_id = running_env(api, name="userns-own")["id"]
    try:
        sh(api, env_id, OWNED)
        before = sh(api, env_id, STAT)
        assert "/workspace/own/user 1000 1001 640" in before
        assert "/opt/own/user 1000 1001 640" in before and "/workspace/own 0 0 2775" in before
        stop(api, env_id)
        wait_state(api, env_id, "stopped")
        assert api.post(f"/v1/environments/{env_id}/archive").status_code == 200
        wait_state(api, env_id, "archived", timeout=120)
        api.post(f"/v1/environments/{env_id}/start")
        wait_state(api, env_id, "running", timeout=120)
        assert sh(api, env_id, STAT) == before
    finally:
        delete(api, env_id)
