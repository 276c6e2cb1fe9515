"""The engine contradicting the database: vanished containers are recreated from
their volume, a container started behind our back is stopped, orphans removed."""

import time
import uuid

import docker
import httpx

from tests.support.engine import container_state, sh
from tests.support.factories import delete, events, running_env, stop, wait_state
from tests.support.server import LiveServer


def test_vanished_container_is_recreated_from_its_volume(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="drift-vanish")
    sh(docker_client, env["id"], "echo kept > /workspace/f")
    docker_client.api.remove_container(f"sandbay-{env['id']}", force=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and container_state(docker_client, env["id"]) != "running":
        time.sleep(0.3)
    wait_state(api, env["id"], "running")
    assert sh(docker_client, env["id"], "cat /workspace/f") == "kept\n"
    reasons = [e["reason"] for e in events(api, env["id"])]
    assert "container vanished; recreating it" in reasons
    delete(api, env["id"])


def test_container_started_behind_our_back_is_stopped_again(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="drift-rogue")
    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped")
    docker_client.api.start(f"sandbay-{env['id']}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(
            e["reason"] == "container was running while stopped" for e in events(api, env["id"])
        ):
            break
        time.sleep(0.3)
    wait_state(api, env["id"], "stopped")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and container_state(docker_client, env["id"]) == "running":
        time.sleep(0.3)
    assert container_state(docker_client, env["id"]) == "exited"
    delete(api, env["id"])


def test_orphan_containers_and_volumes_are_removed_after_the_grace_period(
    make_server: object, docker_client: docker.DockerClient
) -> None:
    live: LiveServer = make_server(extra_env={"SANDBAY_ORPHAN_GRACE": "1"})  # type: ignore[operator]
    live.start()
    ghost = f"env_{uuid.uuid4().hex}"
    labels = {
        "sandbay.environment": ghost,
        "sandbay.org": "org_x",
        "sandbay.instance": live.instance,
    }
    docker_client.volumes.create(name=f"sandbay-ws-{ghost}", labels=labels)
    docker_client.containers.create(
        "sandbay-base:latest", name=f"sandbay-{ghost}", labels=labels, command=["sleep", "1"]
    )
    lonely = f"env_{uuid.uuid4().hex}"
    docker_client.volumes.create(
        name=f"sandbay-ws-{lonely}", labels={**labels, "sandbay.environment": lonely}
    )
    with live.client() as api:
        mine = running_env(api, name="drift-keep")  # a live one must survive
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = [
                v.name
                for v in docker_client.volumes.list(
                    filters={"label": f"sandbay.instance={live.instance}"}
                )
            ]
            if container_state(docker_client, ghost) is None and not any(
                n in names for n in (f"sandbay-ws-{ghost}", f"sandbay-ws-{lonely}")
            ):
                break
            time.sleep(0.3)
        assert container_state(docker_client, ghost) is None
        assert f"sandbay-ws-{lonely}" not in names and f"sandbay-ws-{ghost}" not in names
        assert container_state(docker_client, mine["id"]) == "running"
        assert f"sandbay-ws-{mine['id']}" in names
        delete(api, mine["id"])
