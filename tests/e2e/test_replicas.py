"""Two reconciler replicas on one PostgreSQL: each environment is acted on by one
replica at a time, as the event log shows (action intervals never overlap)."""

import itertools
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import docker

from tests.support.factories import events
from tests.support.postgres import create_database, drop_database
from tests.support.server import LiveServer, new_server, remove_engine_objects


def test_two_replicas_never_act_on_one_environment_at_once(
    tmp_path: Any, docker_client: docker.DockerClient
) -> None:
    url = create_database()
    first = new_server(tmp_path, database_url=url)
    second = LiveServer(
        data_dir=tmp_path / "replica-b", instance=first.instance, key=first.key, database_url=url
    )
    try:
        first.start()
        second.start()
        clients = [first.client(), second.client()]
        ids = []
        for i in range(30):
            answer = clients[i % 2].post(
                "/v1/environments", json={"name": f"rep-{i}", "memory_mb": 64}
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])

        def churn(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(6):
                env_id = rnd.choice(ids)
                action = rnd.choice(["stop", "start", "restart"])
                clients[rnd.randrange(2)].post(f"/v1/environments/{env_id}/{action}")
                time.sleep(rnd.uniform(0, 0.2))

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(churn, range(8)))
        for i, env_id in enumerate(ids):
            clients[i % 2].post(f"/v1/environments/{env_id}/stop", json={"force": True})
        for env_id in ids:
            answer = clients[0].get(
                f"/v1/environments/{env_id}/wait", params={"state": "stopped", "timeout": 90}
            )
            assert answer.status_code == 200, answer.text

        replicas = set()
        actions = 0
        for env_id in ids:
            spans = sorted(
                (
                    datetime.fromisoformat(e["data"]["started_at"]),
                    datetime.fromisoformat(e["data"]["finished_at"]),
                    e["data"]["replica"],
                )
                for e in events(clients[0], env_id)
                if "started_at" in e["data"]
            )
            actions += len(spans)
            replicas |= {r for _, _, r in spans}
            for (_, end, who), (start, _, other) in itertools.pairwise(spans):
                assert start >= end, (env_id, who, other)
        # Every environment's first start, then the churn: some of it refused when it
        # found an environment already there, so no fixed count.
        assert actions > len(ids)
        assert len(replicas) == 2, replicas  # both replicas did work
        for client in clients:
            client.close()
    finally:
        first.stop()
        second.stop()
        remove_engine_objects(first.instance)
        drop_database(url)


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
