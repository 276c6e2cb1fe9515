"""Replicas on one PostgreSQL: an API-only replica hands out what another process
keeps warm. Two reconciler replicas acting on one environment one at a time (action
intervals never overlap, through churn and a kill -9) is shown in
tests/e2e/test_many_hosts.py."""

import json
import time
from typing import Any

import docker

from tests.support.postgres import create_database, drop_database
from tests.support.server import LiveServer, new_server, remove_engine_objects


def test_api_only_replica_hands_out_a_member_another_process_warmed(
    tmp_path: Any, docker_client: docker.DockerClient
) -> None:
    """The README's scaling layout: API replicas with the reconciler off, one process
    running the loops. A create on an API replica is served from the pool the other
    process keeps warm."""
    url = create_database()
    pool = json.dumps([{"org": "default", "size": 1, "memory_mb": 128}])
    loops = new_server(tmp_path, database_url=url, extra_env={"SANDBAY_WARM_POOLS": pool})
    api_only = LiveServer(
        data_dir=tmp_path / "api-only",
        instance=loops.instance,
        key=loops.key,
        database_url=url,
        extra_env={"SANDBAY_WARM_POOLS": pool, "SANDBAY_RECONCILER_ENABLED": "false"},
    )
    try:
        loops.start()
        api_only.start()
        with loops.client() as warm, api_only.client() as api:
            deadline = time.monotonic() + 60
            while not (warm.get("/v1/pools").json() or [{}])[0].get("ready"):
                assert time.monotonic() < deadline, warm.get("/v1/pools").text
                time.sleep(0.2)
            answer = api.post("/v1/environments", json={"name": "from-pool", "memory_mb": 128})
            assert answer.status_code == 201, answer.text
            env = answer.json()
            assert env["state"] == "running"  # claimed, not built
            created = api.get(f"/v1/environments/{env['id']}/events").json()["data"]
            assert created[-1]["type"] == "environment.created" and created[-1]["data"]["pool"]
            ran = api.post(f"/v1/environments/{env['id']}/exec", json={"command": "echo ok"})
            assert ran.json()["stdout"] == "ok\n"
    finally:
        api_only.stop()
        loops.stop()
        remove_engine_objects(loops.instance)
        drop_database(url)
