"""The lifecycle on the real Docker engine and real SQLite, through real HTTP."""

import docker
import httpx

from tests.support.engine import sh
from tests.support.factories import (
    assert_envelope,
    create_env,
    delete,
    running_env,
    state_changes,
    stop,
    wait_state,
)
from tests.support.server import LiveServer, engine_objects

TRAP_TERM = (
    "trap 'echo drained > /workspace/marker; exit 0' TERM; "
    "echo started; while true; do sleep 0.1; done"
)
IGNORE_TERM = "trap '' TERM; while true; do sleep 0.1; done"


def test_create_reaches_running_with_labels_limits_and_workspace(
    api: httpx.Client, docker_client: docker.DockerClient, server: LiveServer
) -> None:
    env = create_env(
        api, name="core-create", cpu=0.5, memory_mb=256, pids_limit=128, labels={"team": "a"}
    )
    assert env["state"] == "creating" and env["desired_state"] == "running"
    assert env["id"].startswith("env_")
    env = wait_state(api, env["id"], "running")
    assert env["container_id"] and env["started_at"] and env["runner_id"]

    attrs = docker_client.api.inspect_container(f"sandbay-{env['id']}")
    labels = attrs["Config"]["Labels"]
    assert labels["sandbay.environment"] == env["id"]
    assert labels["sandbay.org"] == env["org_id"]
    host = attrs["HostConfig"]
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 128
    assert not host.get("Init")  # the environment agent is the init
    assert "ALL" in host["CapDrop"] and "NET_RAW" not in (host["CapAdd"] or [])
    assert "no-new-privileges:true" in host["SecurityOpt"]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    volume = docker_client.volumes.get(mounts["/workspace"]["Name"])
    assert volume.attrs["Labels"]["sandbay.environment"] == env["id"]
    assert volume.attrs["Labels"]["sandbay.org"] == env["org_id"]
    # The environment agent is PID 1, mounted read-only beside the workspace.
    assert sh(docker_client, env["id"], "cat /proc/1/comm").strip() == "envd"
    assert mounts["/.sandbay"]["RW"] is False

    # By name too.
    assert api.get("/v1/environments/core-create").json()["id"] == env["id"]
    delete(api, env["id"])
    containers, volumes = engine_objects(server.instance)
    assert not any(env["id"] in name for name in containers + volumes)


def test_workspace_and_root_filesystem_survive_stop_and_start(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="core-persist")
    sh(docker_client, env["id"], "echo ws > /workspace/a.txt; echo rootfs > /root/b.txt")
    stopped = stop(api, env["id"])
    assert stopped["state"] == "stopping" and stopped["desired_state"] == "stopped"
    wait_state(api, env["id"], "stopped")
    assert docker_client.api.inspect_container(f"sandbay-{env['id']}")["State"]["Running"] is False

    assert api.post(f"/v1/environments/{env['id']}/start").status_code == 200
    again = wait_state(api, env["id"], "running")
    assert again["container_id"] == env["container_id"]  # same container, same host
    assert again["runner_id"] == env["runner_id"]
    assert sh(docker_client, env["id"], "cat /workspace/a.txt /root/b.txt") == "ws\nrootfs\n"
    delete(api, env["id"])


def test_graceful_stop_lets_a_sigterm_trap_write_its_marker(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="core-graceful", command=TRAP_TERM)
    stop(api, env["id"], timeout=30)
    stopped = wait_state(api, env["id"], "stopped")
    assert stopped["exit_code"] == 0  # the trap exited cleanly, it was not killed
    api.post(f"/v1/environments/{env['id']}/start")
    wait_state(api, env["id"], "running")
    assert sh(docker_client, env["id"], "cat /workspace/marker") == "drained\n"
    reasons = [e["reason"] for e in api.get(f"/v1/environments/{env['id']}/events").json()["data"]]
    assert "stopped by SIGTERM" in reasons
    delete(api, env["id"])


def test_force_stop_kills_without_waiting_for_the_grace_period(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="core-force", command=TRAP_TERM)
    # A grace period far longer than the wait below: only a kill can be this quick.
    stop(api, env["id"], force=True, timeout=3600)
    stopped = wait_state(api, env["id"], "stopped", timeout=30)
    assert stopped["exit_code"] == 137  # SIGKILL
    api.post(f"/v1/environments/{env['id']}/start")
    wait_state(api, env["id"], "running")
    marker = docker_client.containers.get(f"sandbay-{env['id']}").exec_run(
        ["test", "-e", "/workspace/marker"]
    )
    assert marker.exit_code == 1  # the SIGTERM trap never ran
    delete(api, env["id"])


def test_workload_that_ignores_sigterm_is_killed_after_timeout(api: httpx.Client) -> None:
    env = running_env(api, name="core-ignore", command=IGNORE_TERM)
    stop(api, env["id"], timeout=1)
    stopped = wait_state(api, env["id"], "stopped", timeout=30)
    assert stopped["exit_code"] == 137
    reasons = [e["reason"] for e in api.get(f"/v1/environments/{env['id']}/events").json()["data"]]
    assert "killed after the 1s grace period" in reasons
    delete(api, env["id"])


def test_force_stop_upgrades_a_graceful_stop_in_progress(api: httpx.Client) -> None:
    env = running_env(api, name="core-upgrade", command=IGNORE_TERM)
    stop(api, env["id"], timeout=3600)
    again = stop(api, env["id"], force=True)
    assert again["state"] in ("stopping", "stopped")
    stopped = wait_state(api, env["id"], "stopped", timeout=30)
    assert stopped["exit_code"] == 137
    delete(api, env["id"])


def test_custom_stop_signal_reaches_the_workload(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    cmd = "trap 'echo usr1 > /workspace/sig; exit 0' USR1; while true; do sleep 0.1; done"
    env = running_env(api, name="core-signal", command=cmd)
    stop(api, env["id"], signal="SIGUSR1", timeout=30)
    assert wait_state(api, env["id"], "stopped")["exit_code"] == 0
    api.post(f"/v1/environments/{env['id']}/start")
    wait_state(api, env["id"], "running")
    assert sh(docker_client, env["id"], "cat /workspace/sig") == "usr1\n"
    delete(api, env["id"])


def test_idempotent_stop_and_start_and_delete_semantics(api: httpx.Client) -> None:
    env = running_env(api, name="core-idem")
    again = api.post(f"/v1/environments/{env['id']}/start")
    assert again.status_code == 200 and again.json()["version"] == env["version"]

    stop(api, env["id"])
    stopped = wait_state(api, env["id"], "stopped")
    second = api.post(f"/v1/environments/{env['id']}/stop")
    assert second.status_code == 200
    assert second.json() == stopped  # same object, nothing changed

    gone = api.delete(f"/v1/environments/{env['id']}")
    assert gone.status_code == 202 and gone.json()["state"] == "deleting"
    # Start while deleting is an invalid transition.
    conflict = api.post(f"/v1/environments/{env['id']}/start")
    if conflict.status_code != 404:  # it may already be gone
        message = assert_envelope(conflict, 409, "conflict_error")
        assert "deleting" in message or "deleted" in message
    wait_state(api, env["id"], "deleted")
    assert_envelope(api.delete(f"/v1/environments/{env['id']}"), 404, "not_found_error")
    assert_envelope(api.get(f"/v1/environments/{env['id']}"), 404, "not_found_error")
    assert_envelope(api.post(f"/v1/environments/{env['id']}/stop"), 404, "not_found_error")


def test_restart_goes_through_stopping_and_back_to_running(api: httpx.Client) -> None:
    env = running_env(api, name="core-restart")
    restarted = api.post(f"/v1/environments/{env['id']}/restart")
    assert restarted.status_code == 200
    assert restarted.json()["state"] == "stopping"
    assert restarted.json()["desired_state"] == "running"
    wait_state(api, env["id"], "running")
    assert state_changes(api, env["id"])[-4:] == [
        ("running", "stopping"),
        ("stopping", "stopped"),
        ("stopped", "starting"),
        ("starting", "running"),
    ]
    delete(api, env["id"])


def test_delete_removes_container_and_volume(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="core-delete")
    name = f"sandbay-{env['id']}"
    assert docker_client.api.inspect_container(name)
    delete(api, env["id"])
    assert not docker_client.api.containers(all=True, filters={"name": name})
    assert not docker_client.volumes.list(filters={"name": f"sandbay-ws-{env['id']}"})
    # The name is free again.
    again = create_env(api, name="core-delete")
    assert again["id"] != env["id"]
    delete(api, again["id"])


def test_delete_works_from_stopped_and_from_creating(api: httpx.Client) -> None:
    env = running_env(api, name="core-del-stopped")
    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped")
    delete(api, env["id"])
    fresh = create_env(api, name="core-del-creating")
    delete(api, fresh["id"])


def test_wait_times_out_with_408_envelope(api: httpx.Client) -> None:
    env = running_env(api, name="core-wait")
    response = api.get(
        f"/v1/environments/{env['id']}/wait", params={"state": "stopped", "timeout": 0.5}
    )
    assert "running" in assert_envelope(response, 408, "timeout_error")
    delete(api, env["id"])


def test_list_filters_by_state_and_label_and_paginates(api: httpx.Client) -> None:
    made = [
        create_env(api, name=f"core-list-{i}", labels={"suite": "list", "i": str(i)})
        for i in range(5)
    ]
    for env in made:
        wait_state(api, env["id"], "running")
    page = api.get("/v1/environments", params={"label": "suite=list", "limit": 2}).json()
    assert len(page["data"]) == 2 and page["has_more"] and page["next_cursor"]
    seen = [e["id"] for e in page["data"]]
    while page["has_more"]:
        page = api.get(
            "/v1/environments",
            params={"label": "suite=list", "limit": 2, "cursor": page["next_cursor"]},
        ).json()
        seen += [e["id"] for e in page["data"]]
    assert sorted(seen) == sorted(e["id"] for e in made)
    assert seen == sorted(seen, reverse=True)  # newest first

    one = api.get("/v1/environments", params=[("label", "suite=list"), ("label", "i=3")]).json()
    assert [e["name"] for e in one["data"]] == ["core-list-3"]
    stop(api, made[0]["id"], force=True)
    wait_state(api, made[0]["id"], "stopped")
    stopped = api.get("/v1/environments", params={"label": "suite=list", "state": "stopped"}).json()
    assert [e["id"] for e in stopped["data"]] == [made[0]["id"]]
    for env in made:
        delete(api, env["id"])


def test_update_changes_labels_and_intervals_and_records_an_event(api: httpx.Client) -> None:
    env = create_env(api, name="core-update")
    response = api.patch(
        f"/v1/environments/{env['id']}",
        json={"labels": {"x": "y"}, "auto_stop_interval": 0, "auto_delete_interval": 5},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == {"x": "y"} and body["auto_stop_interval"] == 0
    assert body["auto_delete_interval"] == 5
    types = [e["type"] for e in api.get(f"/v1/environments/{env['id']}/events").json()["data"]]
    assert "environment.updated" in types
    assert_envelope(
        api.patch(f"/v1/environments/{env['id']}", json={"image": "x"}),
        400,
        "invalid_request_error",
    )
    delete(api, env["id"])


def test_self_hosted_environment_has_no_container(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="core-self-hosted", kind="self_hosted")
    assert env["kind"] == "self_hosted"
    assert not docker_client.api.containers(
        all=True, filters={"label": f"sandbay.environment={env['id']}"}
    )
    stop(api, env["id"])
    wait_state(api, env["id"], "stopped")
    delete(api, env["id"])


def test_replacing_the_variables_drops_the_old_ones_from_later_processes(
    api: httpx.Client,
) -> None:
    env = running_env(api, name="vars", env={"FOO": "1", "KEEP": "k"})
    patched = api.patch(f"/v1/environments/{env['id']}", json={"env": {"KEEP": "k", "BAR": "b"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["env"] == {"KEEP": "k", "BAR": "b"}
    answer = api.post(
        f"/v1/environments/{env['id']}/exec",
        json={"command": 'echo "${FOO-unset} $KEEP $BAR"'},
    )
    assert answer.status_code == 200, answer.text
    # FOO is still in the container's own environment; no process started now sees it.
    assert answer.json()["stdout"] == "unset k b\n"
    delete(api, env["id"])
