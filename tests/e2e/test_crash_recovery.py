"""kill -9 of the server in the middle of lifecycle work, then a restart: every
environment reaches its desired state, no container is left running or orphaned,
no event is lost and every workspace file is intact (SQLite and PostgreSQL)."""

import hashlib
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import httpx
import pytest

from sandbay.domain.states import EnvState, can_transition
from tests.support.engine import read_file
from tests.support.factories import create_env, events
from tests.support.server import LiveServer, engine_objects

SLOW_TERM = (
    "trap 'sleep 1; echo drained > /workspace/drained; exit 0' TERM; while true; do sleep 0.1; done"
)


def wait_all(api: httpx.Client, ids: list[str], state: str, budget: float) -> None:
    deadline = time.monotonic() + budget
    for env_id in ids:
        remaining = max(deadline - time.monotonic(), 0.5)
        response = api.get(
            f"/v1/environments/{env_id}/wait", params={"state": state, "timeout": remaining}
        )
        assert response.status_code == 200, (env_id, response.text)


def assert_consistent_log(api: httpx.Client, env_id: str) -> list[dict[str, Any]]:
    changes = [e for e in events(api, env_id) if e["type"] == "environment.state_changed"]
    for before, after in itertools.pairwise(changes):
        assert before["to_state"] == after["from_state"], (env_id, before, after)
    for change in changes:
        assert can_transition(EnvState(change["from_state"]), EnvState(change["to_state"]))
    return changes


def test_kill9_during_fifty_concurrent_stops(
    make_server: Any, docker_client: docker.DockerClient
) -> None:
    """On SQLite (`make run`'s database): on PostgreSQL, a replica killed -9 during
    churn is shown in tests/e2e/test_many_hosts.py, and the create and delete kills
    below run on both."""
    live: LiveServer = make_server(postgres=False)
    live.start()
    with live.client() as api:
        made = [
            create_env(api, name=f"crash-stop-{i}", command=SLOW_TERM, memory_mb=64)
            for i in range(50)
        ]
        ids = [e["id"] for e in made]
        wait_all(api, ids, "running", 120)
        digests = {}
        for env_id in ids:
            payload = hashlib.sha256(env_id.encode()).hexdigest().encode() * 1000
            docker_client.containers.get(f"sandbay-{env_id}").exec_run(
                ["sh", "-c", f"printf '%s' '{payload.decode()}' > /workspace/data"]
            )
            digests[env_id] = hashlib.sha256(payload).hexdigest()

        def stop(env_id: str) -> int:
            with live.client() as c:
                return c.post(f"/v1/environments/{env_id}/stop", json={"timeout": 30}).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(stop, ids))
        assert codes == [200] * 50
    live.kill9()  # mid-stop: the workloads are draining for a second each
    live.start()
    with live.client() as api:
        wait_all(api, ids, "stopped", 60)
        for env_id in ids:
            changes = assert_consistent_log(api, env_id)
            requested = [
                c for c in changes if c["from_state"] == "running" and c["to_state"] == "stopping"
            ]
            assert requested and requested[-1]["actor"].startswith("key:"), env_id  # not lost
            assert changes[-1]["to_state"] == "stopped"
            assert (
                hashlib.sha256(read_file(docker_client, env_id, "/workspace/data")).hexdigest()
                == digests[env_id]
            )
    running = docker_client.api.containers(
        filters={"label": f"sandbay.instance={live.instance}", "status": "running"}
    )
    assert running == []


@pytest.mark.parametrize("postgres", [False, True], ids=["sqlite", "postgresql"])
def test_kill9_during_create_and_during_delete_leaves_nothing_behind(
    make_server: Any, docker_client: docker.DockerClient, postgres: bool
) -> None:
    live: LiveServer = make_server(postgres=postgres, extra_env={"SANDBAY_ORPHAN_GRACE": "2"})
    live.start()
    with live.client() as api:
        ids = [create_env(api, name=f"crash-create-{i}", memory_mb=64)["id"] for i in range(20)]
    live.kill9()  # mid-create: some containers exist, some not, some half-started
    live.start()
    with live.client() as api:
        wait_all(api, ids, "running", 60)
        for env_id in ids:
            found = docker_client.api.containers(
                all=True, filters={"label": f"sandbay.environment={env_id}"}
            )
            assert len(found) == 1, env_id
            assert_consistent_log(api, env_id)
        for env_id in ids:
            assert api.delete(f"/v1/environments/{env_id}").status_code == 202
    live.kill9()  # mid-delete
    live.start()
    with live.client() as api:
        wait_all(api, ids, "deleted", 60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and engine_objects(live.instance) != ([], []):
        time.sleep(0.5)
    assert engine_objects(live.instance) == ([], [])


def _kill_when(live: LiveServer, api: httpx.Client, env_id: str, state: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if api.get(f"/v1/environments/{env_id}").json()["state"] == state:
            break
        time.sleep(0.02)
    live.kill9()


def test_kill9_during_archive_and_during_restore_keeps_every_file(
    make_server: Any, docker_client: docker.DockerClient
) -> None:
    live: LiveServer = make_server()
    live.start()
    with live.client() as api:
        env_id = create_env(api, name="crash-archive")["id"]
        wait_all(api, [env_id], "running", 60)
        docker_client.containers.get(f"sandbay-{env_id}").exec_run(
            ["sh", "-c", "head -c 20000000 /dev/urandom > /workspace/big; echo r > /root/r"]
        )
        big = hashlib.sha256(read_file(docker_client, env_id, "/workspace/big")).hexdigest()
        api.post(f"/v1/environments/{env_id}/archive")
        _kill_when(live, api, env_id, "archiving")
    live.start()
    with live.client() as api:
        wait_all(api, [env_id], "archived", 60)
        api.post(f"/v1/environments/{env_id}/start")
        _kill_when(live, api, env_id, "restoring")
    live.start()
    with live.client() as api:
        wait_all(api, [env_id], "running", 60)
        assert hashlib.sha256(read_file(docker_client, env_id, "/workspace/big")).hexdigest() == big
        assert read_file(docker_client, env_id, "/root/r") == b"r\n"
        assert_consistent_log(api, env_id)
