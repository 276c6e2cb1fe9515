"""sandbay over a Docker Swarm of three engines (tests/support/swarm.py) on one
PostgreSQL database, laid out as docs/scaling.md tells an operator to: two
control-plane replicas (`sandbay serve`) on the manager, one runner (`sandbay
reconciler`) on each worker, each process on its own node's engine through the
node's local socket (no worker's engine is reached over the network), one archive
store they all reach (as NFS or S3 would be). Environments are placed by capacity
and labels, return to their node across stop and start, are reached from either
replica through the agent port each node's engine publishes on the node's address,
move between nodes through the archive, and wait out a node that goes away.
"""

import contextlib
import itertools
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from websockets.sync.client import connect

from tests.support.cluster import SandbayCluster, sandbay_on
from tests.support.factories import assert_envelope, create_env, events, wait_state
from tests.support.images import BUSYBOX, static_image
from tests.support.polling import eventually
from tests.support.server import ADMIN_KEY, LiveServer
from tests.support.ssh import SshLogin
from tests.support.swarm import SwarmNode, start_swarm

pytestmark = pytest.mark.usefixtures("sqlite_only")
BB = str(BUSYBOX)
MIB = 1024 * 1024


@dataclass
class Cluster(SandbayCluster):
    image: str = ""

    def node_of(self, env: dict[str, Any]) -> SwarmNode:
        return next(n for n in self.swarm.nodes if n.node_id == env["runner_id"])

    @contextlib.contextmanager
    def clients(self) -> Iterator[tuple[httpx.Client, httpx.Client]]:
        a, b = (replica.client() for replica in self.replicas)
        with contextlib.closing(a), contextlib.closing(b):
            yield a, b


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cluster]:
    image = static_image(docker_client)
    base = tmp_path_factory.mktemp("many-hosts")
    labels = {i: {"node": f"n{i}"} for i in range(3)}
    labels[2]["region"] = "eu"
    with start_swarm(3, reachable=True, labels=labels) as swarm:
        swarm.load_image(image)
        fast = {"SANDBAY_RECONCILER__RUNNER_INTERVAL": "0.5"}
        with sandbay_on(swarm, base, extra_env=fast) as made:
            yield Cluster(made.swarm, made.replicas, made.runners, image)


def _sh(api: httpx.Client, env_id: str, script: str) -> str:
    answer = api.post(f"/v1/environments/{env_id}/exec", json={"command": [BB, "sh", "-c", script]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["exit_code"] == 0, answer.json()
    return str(answer.json()["stdout"])


def _sums(api: httpx.Client, env_id: str) -> str:
    """Checksums of every file under /workspace and /etc/made (the root filesystem)."""
    return _sh(
        api,
        env_id,
        f"{BB} find /workspace /etc/made -type f | {BB} sort | {BB} xargs {BB} sha256sum",
    )


def _fill(api: httpx.Client, env_id: str) -> str:
    """Random files in /workspace and in the root filesystem; their checksums."""
    _sh(
        api, env_id,
        f"{BB} mkdir -p /workspace/d /etc/made && "
        f"{BB} head -c 300000 /dev/urandom > /workspace/d/blob && "
        f"echo {env_id} > /workspace/note && {BB} head -c 5000 /dev/urandom > /etc/made/root",
    )  # fmt: skip
    return _sums(api, env_id)


def _answers_again(api: httpx.Client, env_id: str) -> None:
    """Until its agent answers an exec again (its node is back, its runner restarted it)."""
    exec_true = {"command": [BB, "true"]}
    eventually(
        lambda: api.post(f"/v1/environments/{env_id}/exec", json=exec_true).status_code == 200,
        what="its environment answers again",
        timeout=90,
    )


def _delete_all(api: httpx.Client, ids: list[str]) -> None:
    """Delete them (not waited for: a deleted environment reserves nothing at once;
    the module's teardown removes what is left on the nodes)."""
    for env_id in ids:
        assert api.delete(f"/v1/environments/{env_id}").status_code in (200, 202)


def test_thirty_environments_spread_within_capacity_and_return_to_their_nodes(
    cluster: Cluster,
) -> None:
    sizes: list[tuple[float, int]] = [(0.1, 64), (0.2, 128), (0.25, 192), (0.15, 96)]
    with cluster.clients() as (a, b):
        made = []
        for i in range(30):
            cpu, memory = sizes[i % len(sizes)]
            made.append(
                create_env(
                    (a, b)[i % 2], image=cluster.image, name=f"many-{i}", cpu=cpu, memory_mb=memory
                )
            )
        envs = [wait_state(a, env["id"], "running", timeout=120) for env in made]
        per_node = Counter(env["runner_id"] for env in envs)
        assert set(per_node) == {n.node_id for n in cluster.swarm.nodes}, per_node
        runners = {
            r["id"]: r
            for r in a.get("/v1/runners", headers={"X-API-KEY": ADMIN_KEY}).json()["data"]
        }
        used: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for env in envs:
            used[env["runner_id"]][0] += env["cpu"]
            used[env["runner_id"]][1] += env["memory_mb"] * MIB
        for runner_id, (cpus, memory_bytes) in used.items():
            runner = runners[runner_id]
            assert cpus <= runner["cpus"] and memory_bytes <= runner["memory_bytes"]
            assert runners[runner_id]["environments"] == per_node[runner_id]
        for node in cluster.swarm.nodes:
            names = set(node.docker("ps", "--format", "{{.Names}}").split())
            mine = {f"sandbay-{e['id']}" for e in envs if e["runner_id"] == node.node_id}
            others = {f"sandbay-{e['id']}" for e in envs} - mine
            assert mine <= names and not others & names, node.name

        with ThreadPoolExecutor(6) as pool:
            filled = pool.map(lambda i: _fill((a, b)[i % 2], envs[i]["id"]), range(len(envs)))
            sums = dict(zip([env["id"] for env in envs], filled, strict=True))
        for i, env in enumerate(envs):
            assert (b, a)[i % 2].post(f"/v1/environments/{env['id']}/stop").status_code == 200
        for env in envs:
            wait_state(a, env["id"], "stopped", timeout=120)
        for i, env in enumerate(envs):
            assert (a, b)[i % 2].post(f"/v1/environments/{env['id']}/start").status_code == 200
        for env in envs:
            back = wait_state(a, env["id"], "running", timeout=120)
            assert back["runner_id"] == env["runner_id"]
        with ThreadPoolExecutor(6) as pool:
            again = pool.map(lambda i: _sums((b, a)[i % 2], envs[i]["id"]), range(len(envs)))
            assert dict(zip([env["id"] for env in envs], again, strict=True)) == sums
        _delete_all(a, [env["id"] for env in envs])


def _pty_says(replica: LiveServer, env_id: str) -> bytes:
    url = (
        f"ws://127.0.0.1:{replica.port}/v1/environments/{env_id}/pty"
        f"?command={BB}%20sh&cols=80&rows=24"
    )
    with connect(url, additional_headers={"X-API-KEY": replica.key}) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "session"
        socket.send(f"{BB} echo pty-$((6*7))\n".encode())
        screen = b""
        while b"pty-42" not in screen:
            screen += socket.recv(timeout=30)  # type: ignore[operator]
        socket.send(b"exit\n")
    return screen


def _preview(replica: LiveServer, env_id: str, token: str) -> bytes:
    """The preview's page through `replica`, once the server inside accepts."""
    with replica.client(key="") as anon:

        def page() -> bytes | None:
            answer = anon.get(
                f"/preview/{env_id}/8080/", headers={"X-Sandbay-Preview-Token": token}
            )
            return answer.content if answer.status_code == 200 else None

        found: bytes = eventually(page, what="the preview answers", timeout=30)
        return found


def test_exec_files_pty_preview_and_ssh_reach_every_node_through_either_replica(
    cluster: Cluster, tmp_path: Path
) -> None:
    with cluster.clients() as (a, b):
        envs = {}
        for node in cluster.swarm.nodes:  # one on each node
            labels = {"node": f"n{node.index}"}
            envs[node.index] = create_env(a, image=cluster.image, runner_labels=labels)
        for index, env in list(envs.items()):
            envs[index] = wait_state(a, env["id"], "running")
            assert cluster.node_of(envs[index]).index == index
        for env in envs.values():
            env_id = env["id"]
            page = f"<p>{env_id}</p>".encode()
            put = a.put(
                f"/v1/environments/{env_id}/files", params={"path": "/workspace/site/index.html"},
                content=page,
            )  # fmt: skip
            assert put.status_code == 200, put.text
            httpd = b.post(
                f"/v1/environments/{env_id}/processes",
                json={"command": [BB, "httpd", "-f", "-p", "8080", "-h", "/workspace/site"]},
            )
            assert httpd.status_code == 201, httpd.text
            for replica, api in zip(cluster.replicas, (a, b), strict=True):
                assert _sh(api, env_id, "echo $((6 * 7))") == "42\n"
                got = api.get(
                    f"/v1/environments/{env_id}/files",
                    params={"path": "/workspace/site/index.html"},
                )
                assert got.content == page
                assert b"pty-42" in _pty_says(replica, env_id)
                link = api.get(f"/v1/environments/{env_id}/preview/8080").json()
                assert _preview(replica, env_id, link["token"]) == page
                credential = api.get(f"/v1/environments/{env_id}/ssh")
                assert credential.status_code == 200, credential.text
                login = SshLogin.write(credential.json(), tmp_path / uuid.uuid4().hex[:8])
                assert credential.json()["port"] == replica.ssh_port
                ran = login.ssh(BB, "cat", "/workspace/site/index.html")
                assert (ran.returncode, ran.stdout) == (0, page), ran.stderr
        _delete_all(a, [env["id"] for env in envs.values()])


def test_a_drained_node_takes_nothing_new_and_an_environment_moves_off_it(
    cluster: Cluster,
) -> None:
    admin = {"X-API-KEY": ADMIN_KEY}
    with cluster.clients() as (a, b):
        env = wait_state(
            a, create_env(a, image=cluster.image, runner_labels={"region": "eu"})["id"], "running"
        )
        node = cluster.node_of(env)
        sums = _fill(a, env["id"])
        drained = a.post(f"/v1/runners/{node.node_id}/drain", headers=admin)
        assert drained.status_code == 200 and drained.json()["availability"] == "drain"
        try:
            fresh = [create_env(b, image=cluster.image, cpu=0.1, memory_mb=32) for _ in range(6)]
            assert all(e["runner_id"] != node.node_id for e in fresh)
            refused = a.post(
                "/v1/environments", json={"image": cluster.image, "runner_labels": {"region": "eu"}}
            )
            assert "drained" in assert_envelope(refused, 409, "conflict_error")
            # Moving needs the archive: a stopped one is told so.
            assert b.post(f"/v1/environments/{env['id']}/stop").status_code == 200
            wait_state(a, env["id"], "stopped")
            assert_envelope(b.post(f"/v1/environments/{env['id']}/move"), 409, "conflict_error")
            assert a.post(f"/v1/environments/{env['id']}/archive").status_code == 200
            wait_state(a, env["id"], "archived", timeout=120)
            assert node.docker("ps", "-aq", "--filter", f"name=sandbay-{env['id']}").strip() == ""
            moved = b.post(f"/v1/environments/{env['id']}/move")
            assert moved.status_code == 200, moved.text
            target = moved.json()["runner_id"]
            assert target not in (None, node.node_id)
            assert a.post(f"/v1/environments/{env['id']}/start").status_code == 200
            back = wait_state(b, env["id"], "running", timeout=120)
            assert back["runner_id"] == target
            assert _sums(a, env["id"]) == sums
            assert [
                e["data"] for e in events(a, env["id"]) if e["type"] == "environment.moved"
            ] == [{"from_runner_id": node.node_id, "to_runner_id": target}]
        finally:
            a.post(f"/v1/runners/{node.node_id}/activate", headers=admin)
        _delete_all(a, [env["id"], *(e["id"] for e in fresh)])


def test_a_node_that_goes_away_makes_its_environments_unreachable_not_lost(
    cluster: Cluster,
) -> None:
    """The node goes away whole (its runner killed, its engine shut down, as when the
    machine is powered off): its environments show `runner_unreachable_since`, calls
    on them are 503 `runner_unreachable`, nothing is deleted or marked failed; when it
    is back its runner brings them up again."""
    with cluster.clients() as (a, b):
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
        exec_true = {"command": [BB, "true"]}
        for api in (a, b):
            answer = api.post(f"/v1/environments/{env['id']}/exec", json=exec_true)
            assert_envelope(answer, 503, "runner_unreachable")
            files = api.get(
                f"/v1/environments/{env['id']}/files", params={"path": "/workspace/note"}
            )
            assert_envelope(files, 503, "runner_unreachable")
        shown = eventually(
            lambda: (
                (e := a.get(f"/v1/environments/{env['id']}").json())["runner_unreachable_since"]
                and e
            ),
            what="the environment shows its runner unreachable",
        )
        assert shown["state"] == "running" and shown["runner_id"] == node.node_id
        # New environments go elsewhere meanwhile; one that needs the node is refused.
        other = create_env(b, image=cluster.image, cpu=0.1, memory_mb=64)
        assert other["runner_id"] != node.node_id
        pinned = a.post(
            "/v1/environments", json={"image": cluster.image, "runner_labels": {"region": "eu"}}
        )
        assert_envelope(pinned, 503, "runner_unreachable")
        # An intent meanwhile is kept, and done once the node is back.
        assert b.post(f"/v1/environments/{env['id']}/restart").status_code == 200

        node.start()
        runner.start()
        cluster.swarm.wait_state(node, "ready")
        _answers_again(a, env["id"])
        assert _sh(b, env["id"], "cat /workspace/note") == "before\n"
        assert a.get(f"/v1/environments/{env['id']}").json()["runner_unreachable_since"] is None
        seen = events(a, env["id"])
        states = [e["to_state"] for e in seen]
        assert "error" not in states and "deleted" not in states
        kinds = [e["type"] for e in seen]
        assert "environment.runner_unreachable" in kinds and "environment.runner_reachable" in kinds
        _delete_all(a, [env["id"], other["id"]])


def test_a_replica_killed_during_churn_loses_no_action_and_does_none_twice(
    cluster: Cluster,
) -> None:
    """Stops and starts through both replicas while one is killed (-9) and started
    again. The environments are on the manager's node, where both replicas are
    runners and compete for them. Every environment ends as last asked, its event log
    shows each action done once, by one replica at a time (one unbroken chain of
    transitions whose engine actions never overlap), and both replicas did work."""
    on_manager = {"node": "n0"}
    with cluster.clients() as (a, b):
        ids = [
            create_env(a, image=cluster.image, cpu=0.1, memory_mb=32, runner_labels=on_manager)[
                "id"
            ]
            for _ in range(12)
        ]
        for env_id in ids:
            wait_state(a, env_id, "running", timeout=120)
        last: dict[str, str] = {}

        def churn(seed: int) -> None:
            rnd = random.Random(seed)
            mine = ids[seed::4]  # each environment asked by one thread: `last` is exact
            for _ in range(8):
                env_id = rnd.choice(mine)
                action = rnd.choice(["stop", "start"])
                path = f"/v1/environments/{env_id}/{action}"
                try:
                    answer = (a if rnd.random() < 0.5 else b).post(path)
                except httpx.TransportError:
                    # Replica b died, perhaps after recording the intent: as a client
                    # would, ask the other one (start and stop are idempotent).
                    answer = a.post(path)
                if answer.status_code != 200:
                    answer = a.post(path)
                assert answer.status_code == 200, answer.text
                last[env_id] = action
                time.sleep(rnd.uniform(0, 0.3))

        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(churn, seed) for seed in range(4)]
            time.sleep(1.0)
            cluster.replicas[1].kill9()
            for future in running:
                future.result()
        cluster.replicas[1].start()
        for env_id in ids:
            wait_state(
                a,
                env_id,
                "running" if last.get(env_id, "start") == "start" else "stopped",
                timeout=120,
            )
        replicas = set()
        for env_id in ids:
            changes = [e for e in events(a, env_id) if e["type"] == "environment.state_changed"]
            spans = sorted(
                (e["data"]["started_at"], e["data"]["finished_at"])
                for e in changes
                if "started_at" in e.get("data", {})
            )
            replicas |= {e["data"]["replica"] for e in changes if "replica" in e.get("data", {})}
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, env_id  # one replica at a time
            # One unbroken chain of transitions: an action done twice, or one lost
            # half-way, would show as a step that does not start where the last ended.
            for before, after in itertools.pairwise(changes):
                assert after["from_state"] == before["to_state"], (
                    env_id,
                    [(e["from_state"], e["to_state"], e["reason"], e["actor"]) for e in changes],
                )
                assert after["from_state"] != after["to_state"], (env_id, after)
        assert len(replicas) >= 2, replicas  # both (and b again after its restart)
        _delete_all(a, ids)


def test_a_node_whose_engine_alone_stops_converges_with_its_runner_still_up(
    cluster: Cluster,
) -> None:
    """Only the engine stops (an upgrade); the node's runner stays up and watches it
    go. The shutdown's SIGTERM of each container is the engine's doing, not the
    workload's exit: nothing ends in `error`, and all of it comes back by itself."""
    with cluster.clients() as (a, b):
        made = create_env(a, image=cluster.image, runner_labels={"node": "n1"}, cpu=0.1)
        env = wait_state(a, made["id"], "running")
        node = cluster.node_of(env)
        assert node.index == 1
        _sh(a, env["id"], "echo kept > /workspace/note")
        node.stop()
        cluster.swarm.wait_state(node, "down")
        exec_true = {"command": [BB, "true"]}
        assert_envelope(
            b.post(f"/v1/environments/{env['id']}/exec", json=exec_true), 503, "runner_unreachable"
        )
        node.start()
        cluster.swarm.wait_state(node, "ready")
        _answers_again(a, env["id"])
        assert _sh(b, env["id"], "cat /workspace/note") == "kept\n"
        seen = events(a, env["id"])
        assert not [e for e in seen if e["to_state"] == "error"], seen
        assert any("stopped by its engine" in (e.get("reason") or "") for e in seen), seen
        _delete_all(a, [env["id"]])
