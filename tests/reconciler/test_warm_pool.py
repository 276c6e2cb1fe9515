"""Warm pools: a matching create is served from a ready member and answers
`running` at once; members are fresh, per organization, hidden until claimed."""

import json
import time
from typing import Any

import docker
import httpx

from tests.support.engine import sh
from tests.support.factories import create_env, delete, wait_state
from tests.support.server import ADMIN_KEY, LiveServer


def wait_ready(api: httpx.Client, ready: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pools = api.get("/v1/pools").json()
        if pools and pools[0]["ready"] >= ready:
            return dict(pools[0])
        time.sleep(0.2)
    raise AssertionError(f"pool not ready: {pools}")


def test_matching_create_claims_a_warm_member(
    make_server: Any, docker_client: docker.DockerClient
) -> None:
    pool = [{"org": "default", "size": 2, "memory_mb": 256, "cpu": 0.5}]
    live: LiveServer = make_server(extra_env={"SANDBAY_WARM_POOLS": json.dumps(pool)})
    live.start()
    with live.client() as api:
        status = wait_ready(api, 2)
        assert status["size"] == 2 and status["memory_mb"] == 256
        assert api.get("/v1/environments").json()["data"] == []  # members are hidden

        env = create_env(
            api, name="warm-one", memory_mb=256, cpu=0.5, labels={"k": "v"}, env={"A": "1"}
        )
        assert env["state"] == "running"  # at once, from the pool
        assert env["name"] == "warm-one" and env["labels"] == {"k": "v"}
        attrs = docker_client.api.inspect_container(f"sandbay-{env['id']}")
        assert attrs["Config"]["Labels"]["sandbay.org"] == env["org_id"]
        assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
        assert sh(docker_client, env["id"], "ls -A /workspace") == ""  # fresh
        ran = api.post(f"/v1/environments/{env['id']}/exec", json={"command": "echo $A"})
        assert ran.json()["stdout"] == "1\n"  # its env, though the container predates it
        created = list(api.get(f"/v1/environments/{env['id']}/events").json()["data"])
        assert created[-1]["type"] == "environment.created" and created[-1]["data"]["pool"]

        # Different shape or a workload of its own: built from scratch.
        other = create_env(api, name="warm-other", memory_mb=512)
        assert other["state"] == "creating"
        own = create_env(api, name="warm-cmd", memory_mb=256, cpu=0.5, command="sleep 100")
        assert own["state"] == "creating"

        # The pool refills, with fresh members; a deleted environment never returns to it.
        wait_ready(api, 2)
        delete(api, env["id"])
        again = create_env(api, name="warm-two", memory_mb=256, cpu=0.5)
        assert again["state"] == "running" and again["id"] != env["id"]
        for e in (other, own, again):
            wait_state(api, e["id"], "running")
            delete(api, e["id"])

    # Another organization never gets this organization's members.
    with live.client(key=ADMIN_KEY) as admin:
        key = admin.post("/v1/orgs", json={"name": "warm-other-org"}).json()["api_key"]["key"]
    with live.client(key=key) as stranger:
        theirs = create_env(stranger, name="warm-stranger", memory_mb=256, cpu=0.5)
        assert theirs["state"] == "creating"
        assert stranger.get("/v1/pools").json() == []
        wait_state(stranger, theirs["id"], "running")
        delete(stranger, theirs["id"])
