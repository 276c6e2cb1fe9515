"""sandbay over a Docker Swarm of three engines (tests/support/swarm.py), on one
PostgreSQL database: two control-plane replicas on the manager and one runner on
each worker, every process on the engine of its own node (its local socket; no
worker's engine is reached over the network). Environments are placed by capacity,
return to their node across stop and start, and are reached from either replica
through the agent port each node's engine publishes on the node's address.
"""

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.factories import assert_envelope, create_env, events, wait_state
from tests.support.images import BUSYBOX, static_image
from tests.support.polling import eventually
from tests.support.postgres import create_database, drop_database
from tests.support.server import LiveServer, remove_engine_objects
from tests.support.swarm import Swarm, SwarmNode, start_swarm

pytestmark = pytest.mark.usefixtures("sqlite_only")


@dataclass
class Cluster:
    swarm: Swarm
    #: The two control-plane replicas (on the manager's engine).
    replicas: list[LiveServer]
    #: One runner per worker node, by node index.
    runners: dict[int, LiveServer]
    image: str

    def node_of(self, env: dict[str, Any]) -> SwarmNode:
        return next(n for n in self.swarm.nodes if n.node_id == env["runner_id"])


def _process(
    base: Path, instance: str, key: str, url: str, node: SwarmNode, secret: str
) -> LiveServer:
    return LiveServer(
        data_dir=base / f"{node.name}-{uuid.uuid4().hex[:6]}",
        instance=instance,
        key=key,
        database_url=url,
        extra_env={
            "SANDBAY_DOCKER_HOST": node.url,
            "SANDBAY_SECRETS_KEY": secret,
            "SANDBAY_DISK_LIMITS": "false",
        },
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cluster]:
    image = static_image(docker_client)
    base = tmp_path_factory.mktemp("many-hosts")
    instance, key = f"test-{uuid.uuid4().hex[:10]}", "sbk_org_" + uuid.uuid4().hex
    secret = Fernet.generate_key().decode()
    url = create_database()
    started: list[LiveServer] = []
    try:
        with start_swarm(3, reachable=True, labels={2: {"region": "eu"}}) as swarm:
            swarm.load_image(image)
            try:
                replicas = [
                    _process(base, instance, key, url, swarm.manager, secret) for _ in range(2)
                ]
                runners = {
                    n.index: _process(base, instance, key, url, n, secret) for n in swarm.workers
                }
                for process in [*replicas, *runners.values()]:
                    started.append(process.start())
                yield Cluster(swarm, replicas, runners, image)
            finally:
                for process in started:
                    process.stop()
    finally:
        drop_database(url)
        for process in started[:1]:
            remove_engine_objects(process.instance)


def _sh(api: httpx.Client, env_id: str, script: str) -> str:
    answer = api.post(
        f"/v1/environments/{env_id}/exec", json={"command": [str(BUSYBOX), "sh", "-c", script]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["exit_code"] == 0, answer.json()
    return str(answer.json()["stdout"])


def test_environments_spread_over_the_nodes_and_are_reached_from_either_replica(
    cluster: Cluster,
) -> None:
    a, b = (replica.client() for replica in cluster.replicas)
    with contextlib.closing(a), contextlib.closing(b):
        sizes = [(0.1, 64), (0.2, 128), (0.3, 96)]
        made = []
        for i in range(12):
            cpu, memory = sizes[i % len(sizes)]
            made.append(
                create_env(
                    a if i % 2 else b,
                    image=cluster.image,
                    cpu=cpu,
                    memory_mb=memory,
                    name=f"many-{i}",
                )  # fmt: skip
            )
        envs = [wait_state(a, env["id"], "running", timeout=90) for env in made]
        per_node = Counter(env["runner_id"] for env in envs)
        assert set(per_node) == {n.node_id for n in cluster.swarm.nodes}, per_node
        # Each runs on the engine of the node it was placed on, and nowhere else.
        for env in envs:
            node = cluster.node_of(env)
            names = node.docker("ps", "--format", "{{.Names}}").split()
            assert f"sandbay-{env['id']}" in names
        # Inside each node's environments, through either replica.
        for node in cluster.swarm.nodes:
            env = next(e for e in envs if e["runner_id"] == node.node_id)
            for api in (a, b):
                assert _sh(api, env["id"], "echo $((6 * 7))") == "42\n"
            body = uuid.uuid4().bytes * 1000
            path = {"path": "/workspace/kept.bin"}
            assert (
                a.put(f"/v1/environments/{env['id']}/files", params=path, content=body).status_code
                == 200
            )
            assert b.get(f"/v1/environments/{env['id']}/files", params=path).content == body


def test_a_node_that_goes_down_makes_its_environments_unreachable_not_lost(
    cluster: Cluster,
) -> None:
    """The node fails whole (its runner and its engine killed, as when the machine
    goes away): calls on its environments are 503 `runner_unreachable`, nothing is
    deleted or marked failed; when it is back its runner brings them up again."""
    a = cluster.replicas[0].client()
    with contextlib.closing(a):
        made = create_env(
            a, image=cluster.image, runner_labels={"region": "eu"}, cpu=0.1, memory_mb=64
        )
        env = wait_state(a, made["id"], "running")
        node = cluster.node_of(env)
        assert node.index == 2  # the only node labelled region=eu
        _sh(a, env["id"], "echo before > /workspace/note")
        runner = cluster.runners[node.index]
        runner.kill9()
        node.stop()
        cluster.swarm.wait_state(node, "down")
        exec_true = {"command": [str(BUSYBOX), "true"]}
        answer = a.post(f"/v1/environments/{env['id']}/exec", json=exec_true)
        assert_envelope(answer, 503, "runner_unreachable")
        files = a.get(f"/v1/environments/{env['id']}/files", params={"path": "/workspace/note"})
        assert_envelope(files, 503, "runner_unreachable")
        shown = a.get(f"/v1/environments/{env['id']}").json()
        assert shown["state"] == "running" and shown["runner_id"] == node.node_id
        # New environments go elsewhere meanwhile; one that needs the node waits (503).
        other = create_env(a, image=cluster.image, cpu=0.1, memory_mb=64)
        assert other["runner_id"] != node.node_id
        pinned = a.post(
            "/v1/environments",
            json={"image": cluster.image, "runner_labels": {"region": "eu"}},
        )
        assert_envelope(pinned, 409, "conflict_error")

        node.start()
        runner.start()
        cluster.swarm.wait_state(node, "ready")
        eventually(
            lambda: a.post(f"/v1/environments/{env['id']}/exec", json=exec_true).status_code == 200,
            what="its environment answers again",
            timeout=90,
        )
        assert _sh(a, env["id"], "cat /workspace/note") == "before\n"
        states = [e.get("data", {}).get("to") for e in events(a, env["id"])]
        assert "error" not in states and "deleted" not in states
