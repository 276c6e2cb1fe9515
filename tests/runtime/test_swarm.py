"""Runners read from a real Swarm (three engines in namespaces, tests/support/swarm.py)
through the manager's API: every node with its state, availability, labels and
resources; drain and activate through the node spec, seen by `docker node ls`; a
node whose engine stops goes down and comes back ready. Without Swarm mode the host
is the one runner, and drain says why it cannot."""

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from sandbay.domain.errors import Conflict, NotFound
from sandbay.domain.runners import Availability, RunnerState
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.runtime.docker.swarm import DockerSwarm
from sandbay.settings import default_agent_dir
from tests.support.polling import eventually
from tests.support.swarm import Swarm, start_swarm

pytestmark = [pytest.mark.docker]

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@contextlib.contextmanager
def swarm_view(url: str | None, runner_id: str = "this-host") -> Iterator[DockerSwarm]:
    provider = DockerProvider(
        runner_id=runner_id, agent_dir=default_agent_dir(), base_url=url, threads=4
    )
    try:
        yield DockerSwarm(provider, runner_id)
    finally:
        run(provider.close())


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    with start_swarm(
        3, labels={1: {"region": "eu", "gpu": "true"}}, engine_labels={2: {"disk": "ssd"}}
    ) as started:
        yield started


@pytest.fixture(scope="module")
def runners(swarm: Swarm) -> Iterator[DockerSwarm]:
    with swarm_view(swarm.manager.url) as view:
        yield view


def test_a_manager_lists_every_node_ready_and_active_with_labels_and_resources(
    swarm: Swarm, runners: DockerSwarm
) -> None:
    listed = {runner.id: runner for runner in run(runners.runners())}
    assert set(listed) == {node.node_id for node in swarm.nodes}
    for node in swarm.nodes:
        runner = listed[node.node_id]
        assert runner.hostname == node.name
        assert runner.state is RunnerState.READY
        assert runner.availability is Availability.ACTIVE
        assert runner.swarm and runner.manager is (node is swarm.manager)
        assert runner.address == node.address
        assert runner.nano_cpus > 0 and runner.memory_bytes > 0
    assert listed[swarm.nodes[1].node_id].labels == {"region": "eu", "gpu": "true"}
    assert listed[swarm.nodes[2].node_id].engine_labels == {"disk": "ssd"}
    assert listed[swarm.nodes[0].node_id].labels == {}
    # One node by id or by its hostname; an unknown one is a 404.
    assert run(runners.runner(swarm.nodes[2].name)).id == swarm.nodes[2].node_id
    with pytest.raises(NotFound):
        run(runners.runner("no-such-node"))


def test_drain_and_activate_change_availability_as_docker_node_ls_shows(
    swarm: Swarm, runners: DockerSwarm
) -> None:
    node = swarm.nodes[1]
    drained = run(runners.set_availability(node.node_id, Availability.DRAIN))
    assert drained.availability is Availability.DRAIN
    assert drained.labels == {"region": "eu", "gpu": "true"}  # the rest of the spec kept
    shown = swarm.manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Availability}}")
    assert f"{node.name} Drain" in shown.splitlines()
    back = run(runners.set_availability(node.name, Availability.ACTIVE))
    assert back.availability is Availability.ACTIVE
    assert node.docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "active"
    assert (
        swarm.manager.docker("node", "inspect", node.node_id, "-f", "{{.Spec.Availability}}")
        == "active\n"
    )


def test_a_worker_engine_is_refused_with_where_to_point_instead(swarm: Swarm) -> None:
    with swarm_view(swarm.nodes[1].url) as worker, pytest.raises(Conflict, match="manager"):
        run(worker.runners())


def test_a_node_whose_engine_stops_goes_down_and_comes_back_ready(
    swarm: Swarm, runners: DockerSwarm
) -> None:
    node = swarm.nodes[2]

    def state() -> RunnerState:
        return run(runners.runner(node.node_id)).state

    node.stop()
    try:
        eventually(lambda: state() is RunnerState.DOWN, what="node down", timeout=30)
    finally:
        node.start()
    eventually(lambda: state() is RunnerState.READY, what="node ready", timeout=30)


def test_an_engine_without_swarm_is_one_runner_that_cannot_be_drained() -> None:
    """The main engine (never in a Swarm in this suite): read only."""
    with swarm_view(None, runner_id="host-a") as single:
        (runner,) = run(single.runners())
        assert (runner.id, runner.swarm, runner.manager) == ("host-a", False, False)
        assert (runner.state, runner.availability) == (RunnerState.READY, Availability.ACTIVE)
        assert runner.nano_cpus >= 1_000_000_000 and runner.memory_bytes > 0
        with pytest.raises(Conflict, match="not a Swarm"):
            run(single.set_availability("host-a", Availability.DRAIN))
