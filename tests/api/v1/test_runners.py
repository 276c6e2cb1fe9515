"""/v1/runners and `sandbay runner …` against a live server pointed at a real Swarm's
manager (three engines in namespaces, tests/support/swarm.py) through
SANDBAY_DOCKER_HOST: the nodes with their state, availability, labels and
resources; drain and activate (seen by `docker node ls`); operator key only; a 404
envelope for an unknown node. On the suite's own server (one engine, no Swarm) the
host is the one runner and a drain is a 409 saying why."""

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cli.test_cli import SANDBAY
from tests.support.server import ADMIN_KEY, LiveServer, new_server, remove_engine_objects
from tests.support.swarm import Swarm, start_swarm

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    with start_swarm(3, labels={2: {"region": "eu"}}) as started:
        yield started


@pytest.fixture(scope="module")
def swarm_server(
    swarm: Swarm, tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> Iterator[LiveServer]:
    """A server whose engine is the Swarm manager (which has none of sandbay's
    images: nothing here needs an environment to run)."""
    live = new_server(
        tmp_path_factory.mktemp("runners"),
        database_url=database_url,
        extra_env={
            "SANDBAY_DOCKER_HOST": swarm.manager.url,
            "SANDBAY_RUNNER_ID": swarm.manager.node_id,
            "SANDBAY_SSH__ENABLED": "false",
        },
    ).start()
    try:
        yield live
    finally:
        live.stop()
        remove_engine_objects(live.instance)


@pytest.fixture(scope="module")
def operator(swarm_server: LiveServer) -> Iterator[httpx.Client]:
    with swarm_server.client(key=ADMIN_KEY) as client:
        yield client


def cli(server: LiveServer, *args: str, key: str = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
    env = {"SANDBAY_API_URL": server.url, "SANDBAY_API_KEY": key, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [SANDBAY, "runner", *args], env=env, capture_output=True, text=True, timeout=60
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.mark.usefixtures("sqlite_only")
def test_the_operator_sees_every_swarm_node(swarm: Swarm, operator: httpx.Client) -> None:
    listed = operator.get("/v1/runners")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["swarm"] is True
    runners = {r["id"]: r for r in body["data"]}
    assert set(runners) == {node.node_id for node in swarm.nodes}
    for node in swarm.nodes:
        runner = runners[node.node_id]
        assert (runner["hostname"], runner["address"]) == (node.name, node.address)
        assert (runner["state"], runner["availability"]) == ("ready", "active")
        assert runner["manager"] is (node is swarm.manager)
        assert runner["cpus"] >= 1 and runner["memory_bytes"] > 0
    assert runners[swarm.nodes[2].node_id]["labels"] == {"region": "eu"}
    one = operator.get(f"/v1/runners/{swarm.nodes[2].name}")  # by hostname too
    assert one.status_code == 200 and one.json()["id"] == swarm.nodes[2].node_id


@pytest.mark.usefixtures("sqlite_only")
def test_drain_and_activate_through_the_api_and_the_cli(
    swarm: Swarm, swarm_server: LiveServer, operator: httpx.Client
) -> None:
    node = swarm.nodes[1]
    drained = operator.post(f"/v1/runners/{node.node_id}/drain")
    assert drained.status_code == 200, drained.text
    assert drained.json()["availability"] == "drain"
    shown = swarm.manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Availability}}")
    assert f"{node.name} Drain" in shown.splitlines()

    table = cli(swarm_server, "ls", "--output", "table")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if node.node_id in line)
    assert node.name in row and "drain" in row

    activated = cli(swarm_server, "activate", node.name)
    assert activated.returncode == 0, activated.stderr
    assert json.loads(activated.stdout)["availability"] == "active"
    assert (
        swarm.manager.docker("node", "inspect", node.node_id, "-f", "{{.Spec.Availability}}")
        == "active\n"
    )
    got = json.loads(cli(swarm_server, "get", node.node_id).stdout)
    assert (got["id"], got["availability"]) == (node.node_id, "active")


@pytest.mark.usefixtures("sqlite_only")
def test_an_unknown_runner_is_a_404_envelope(
    swarm_server: LiveServer, operator: httpx.Client
) -> None:
    for method, path in [
        ("GET", "/v1/runners/no-such-node"),
        ("POST", "/v1/runners/no-such-node/drain"),
        ("POST", "/v1/runners/no-such-node/activate"),
    ]:
        answer = operator.request(method, path)
        assert answer.status_code == 404, answer.text
        assert error_of(answer)["type"] == "not_found_error"
    missing = cli(swarm_server, "drain", "no-such-node")
    assert missing.returncode == 4 and "not_found_error" in missing.stderr


@pytest.mark.usefixtures("sqlite_only")
def test_runners_are_the_operators_alone(swarm: Swarm, swarm_server: LiveServer) -> None:
    node = swarm.nodes[1]
    with swarm_server.client() as org, swarm_server.client(key="") as nobody:
        for client, status in ((org, 403), (nobody, 401)):
            for method, path in [
                ("GET", "/v1/runners"),
                ("GET", f"/v1/runners/{node.node_id}"),
                ("POST", f"/v1/runners/{node.node_id}/drain"),
            ]:
                answer = client.request(method, path)
                assert answer.status_code == status, answer.text
                assert "error" in answer.json()
    refused = cli(swarm_server, "ls", key=swarm_server.key)
    assert refused.returncode == 1 and "permission_error" in refused.stderr
    assert (
        swarm.manager.docker("node", "inspect", node.node_id, "-f", "{{.Spec.Availability}}")
        == "active\n"
    )


def test_a_runner_counts_the_environments_placed_on_it(
    swarm: Swarm, swarm_server: LiveServer, operator: httpx.Client
) -> None:
    """The count comes from the database (both databases run it): an environment
    recorded on the node it was placed on counts there whatever became of its
    container (an empty image imported on the manager: it runs nothing anywhere)."""
    subprocess.run(
        ["docker", "-H", swarm.manager.url, "import", "-", "counted:empty"],
        input=bytes(10240), check=True, capture_output=True, timeout=60,  # an empty tar
    )  # fmt: skip
    before = {r["id"]: r["environments"] for r in operator.get("/v1/runners").json()["data"]}
    with swarm_server.client() as org:
        created = org.post("/v1/environments", json={"name": "counted", "image": "counted:empty"})
        assert created.status_code in (200, 201, 202), created.text
        env_id = created.json()["id"]
        try:
            placed = created.json()["runner_id"]
            assert placed in {n.node_id for n in swarm.nodes}
            after = {r["id"]: r["environments"] for r in operator.get("/v1/runners").json()["data"]}
            # Other tests of the module placed theirs too: this one adds one, there.
            assert {
                k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)
            } == {placed: 1}
        finally:
            assert org.delete(f"/v1/environments/{env_id}").status_code in (200, 202)


def test_one_host_without_swarm_is_one_runner_that_cannot_be_drained(
    server: LiveServer,
) -> None:
    with server.client(key=ADMIN_KEY) as operator:
        listed = operator.get("/v1/runners").json()
        assert listed["swarm"] is False and len(listed["data"]) == 1
        (host,) = listed["data"]
        assert (host["state"], host["availability"], host["manager"]) == ("ready", "active", False)
        assert host["cpus"] >= 1
        refused = operator.post(f"/v1/runners/{host['id']}/drain")
        assert refused.status_code == 409, refused.text
        assert error_of(refused)["type"] == "conflict_error"
        assert error_of(refused)["message"].startswith("not a Swarm")
