"""Concurrent lifecycle requests: the compare-and-set on `version` lets exactly one
writer win each race; the state machine and the event log stay consistent."""

import itertools
import random
from concurrent.futures import ThreadPoolExecutor

import docker
import httpx

from sandbay.domain.states import EnvState, can_transition
from tests.support.factories import delete, events, running_env, stop, wait_state
from tests.support.server import LiveServer


def _fire(server: LiveServer, env_id: str, action: str) -> int:
    with server.client() as client:
        body = {"force": True} if action == "stop" else None
        return client.post(f"/v1/environments/{env_id}/{action}", json=body).status_code


def test_twenty_concurrent_stop_and_start_requests_stay_consistent(
    server: LiveServer, api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="conc-one")
    actions = ["stop", "start"] * 10
    random.Random(7).shuffle(actions)
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda a: _fire(server, env["id"], a), actions))
    assert set(codes) <= {200, 409}, codes
    assert codes.count(200) >= 1

    # Settle on a final intent and let the reconciler converge to it.
    stop(api, env["id"], force=True)
    final = wait_state(api, env["id"], "stopped", timeout=60)
    assert final["desired_state"] == "stopped"

    # One container, matching the final state.
    found = docker_client.api.containers(
        all=True, filters={"label": f"sandbay.environment={env['id']}"}
    )
    assert len(found) == 1
    assert found[0]["State"] != "running"

    # The event log is one unbroken chain of allowed transitions, in order.
    changes = [e for e in events(api, env["id"]) if e["type"] == "environment.state_changed"]
    ids = [e["id"] for e in changes]
    assert ids == sorted(ids)
    for before, after in itertools.pairwise(changes):
        assert before["to_state"] == after["from_state"], (before, after)
    for change in changes:
        assert can_transition(EnvState(change["from_state"]), EnvState(change["to_state"]))
    assert changes[-1]["to_state"] == "stopped"
    # The version advanced once per write: never two writers on one version.
    assert final["version"] >= len(changes)
    delete(api, env["id"])


def test_concurrent_creates_with_one_name_make_exactly_one(
    server: LiveServer, api: httpx.Client
) -> None:
    def create(_: int) -> httpx.Response:
        with server.client() as client:
            return client.post("/v1/environments", json={"name": "conc-same"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(create, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1, codes
    assert set(codes) == {201, 409}
    winner = next(r.json() for r in responses if r.status_code == 201)
    listed = api.get("/v1/environments", params={"limit": 1000}).json()["data"]
    assert [e["id"] for e in listed if e["name"] == "conc-same"] == [winner["id"]]
    wait_state(api, winner["id"], "running")
    delete(api, winner["id"])
