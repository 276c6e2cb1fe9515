"""Lifecycle policies with real timers (fractional minutes) on real Docker:
auto-stop and what counts as activity, max lifetime, pre-stop hooks, auto-archive
and restore, auto-delete, and the restart policy."""

import time

import docker
import httpx

from tests.support.engine import container_state, read_file, sh
from tests.support.factories import create_env, delete, events, running_env, stop, wait_state
from tests.support.server import LiveServer

SECONDS = 1 / 60  # intervals are in minutes


def actors_of(api: httpx.Client, env_id: str, to_state: str) -> list[str]:
    return [
        e["actor"]
        for e in events(api, env_id)
        if e["type"] == "environment.state_changed" and e["to_state"] == to_state
    ]


def test_idle_environment_auto_stops_and_reads_do_not_count_as_activity(
    api: httpx.Client,
) -> None:
    env = running_env(api, name="pol-idle", auto_stop_interval=3 * SECONDS)
    assert env["auto_stop_at"] is not None
    # A dashboard polling the environment must not keep it alive (coder/coder#10841).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = api.get(f"/v1/environments/{env['id']}").json()
        if current["state"] != "running":
            break
        time.sleep(0.5)
    wait_state(api, env["id"], "stopped", timeout=30)
    assert actors_of(api, env["id"], "stopping")[-1] == "system:auto-stop"
    assert api.get(f"/v1/environments/{env['id']}").json()["auto_stop_at"] is None
    delete(api, env["id"])


def test_keepalive_pushes_auto_stop_back(api: httpx.Client) -> None:
    env = running_env(api, name="pol-keepalive", auto_stop_interval=4 * SECONDS)
    first = env["auto_stop_at"]
    for _ in range(6):  # ~6 s of keepalives, longer than the 4 s idle interval
        time.sleep(1)
        kept = api.post(f"/v1/environments/{env['id']}/keepalive")
        assert kept.status_code == 200, kept.text
        assert kept.json()["state"] == "running"
    assert kept.json()["auto_stop_at"] > first
    wait_state(api, env["id"], "stopped", timeout=30)  # and without them, it stops
    assert actors_of(api, env["id"], "stopping")[-1] == "system:auto-stop"
    conflict = api.post(f"/v1/environments/{env['id']}/keepalive")
    assert conflict.status_code == 409
    delete(api, env["id"])


def test_max_lifetime_stops_whatever_the_activity(api: httpx.Client) -> None:
    env = running_env(api, name="pol-lifetime", auto_stop_interval=0, max_lifetime=3 * SECONDS)
    for _ in range(30):
        if api.post(f"/v1/environments/{env['id']}/keepalive").status_code != 200:
            break
        time.sleep(0.5)
    wait_state(api, env["id"], "stopped", timeout=30)
    assert actors_of(api, env["id"], "stopping")[-1] == "system:max-lifetime"
    delete(api, env["id"])


def test_pre_stop_hook_runs_before_the_signal(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    workload = "trap 'test -e /workspace/hook && echo after-hook > /workspace/order; exit 0' TERM; while true; do sleep 0.1; done"  # noqa: E501
    env = running_env(
        api, name="pol-prestop", command=workload, pre_stop="echo flushed > /workspace/hook"
    )
    stop(api, env["id"], timeout=20)
    stopped = wait_state(api, env["id"], "stopped")
    assert stopped["exit_code"] == 0
    hook = [e for e in events(api, env["id"]) if e["to_state"] == "stopped"][-1]["data"]
    assert hook["pre_stop"]["exit_code"] == 0
    api.post(f"/v1/environments/{env['id']}/start")
    wait_state(api, env["id"], "running")
    assert sh(docker_client, env["id"], "cat /workspace/hook /workspace/order") == (
        "flushed\nafter-hook\n"
    )
    delete(api, env["id"])


def test_auto_archive_then_start_restores_every_file_byte_identical(
    api: httpx.Client, docker_client: docker.DockerClient, server: LiveServer
) -> None:
    env = running_env(api, name="pol-archive", auto_archive_interval=2 * SECONDS)
    sh(
        docker_client,
        env["id"],
        "head -c 5000000 /dev/urandom > /workspace/blob; mkdir -p /workspace/d/e;"
        " echo nested > /workspace/d/e/f; head -c 300000 /dev/urandom > /root/rootblob;"
        " ln -s /root/rootblob /root/link; rm /etc/issue; chmod 640 /workspace/d/e/f",
    )
    sums = sh(
        docker_client,
        env["id"],
        "sha256sum /workspace/blob /workspace/d/e/f /root/rootblob; stat -c %a /workspace/d/e/f",
    )
    stop(api, env["id"])
    archived = wait_state(api, env["id"], "archived", timeout=60)
    assert archived["archived_at"] and archived["container_id"] is None
    assert actors_of(api, env["id"], "archiving")[-1] == "system:auto-archive"
    assert container_state(docker_client, env["id"]) is None
    assert not docker_client.volumes.list(filters={"name": f"sandbay-ws-{env['id']}"})
    assert (server.data_dir / "archives" / env["id"] / "manifest.json").exists()

    api.post(f"/v1/environments/{env['id']}/start")
    wait_state(api, env["id"], "running", timeout=60)
    changes = [(e["from_state"], e["to_state"]) for e in events(api, env["id"])]
    assert ("archived", "restoring") in changes and ("restoring", "starting") in changes
    again = sh(
        docker_client,
        env["id"],
        "sha256sum /workspace/blob /workspace/d/e/f /root/rootblob; stat -c %a /workspace/d/e/f",
    )
    assert again == sums
    assert sh(
        docker_client, env["id"], "readlink /root/link; test ! -e /etc/issue && echo gone"
    ) == ("/root/rootblob\ngone\n")
    assert not (server.data_dir / "archives" / env["id"]).exists()
    delete(api, env["id"])


def test_manual_archive_of_a_running_environment_stops_it_first(api: httpx.Client) -> None:
    env = running_env(api, name="pol-archive-now", auto_archive_interval=0)
    answer = api.post(f"/v1/environments/{env['id']}/archive")
    assert answer.status_code == 200
    assert answer.json()["desired_state"] == "archived"
    wait_state(api, env["id"], "archived", timeout=60)
    again = api.post(f"/v1/environments/{env['id']}/archive")
    assert again.status_code == 200 and again.json()["state"] == "archived"
    delete(api, env["id"])


def test_auto_delete_zero_deletes_as_soon_as_it_stops(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="pol-del-zero", auto_delete_interval=0)
    stopping = stop(api, env["id"])
    assert stopping["state"] == "stopping" and stopping["desired_state"] == "stopped"
    wait_state(api, env["id"], "deleted", timeout=30)
    assert container_state(docker_client, env["id"]) is None
    assert api.get(f"/v1/environments/{env['id']}").status_code == 404


def test_auto_delete_after_n_minutes_stopped(api: httpx.Client) -> None:
    env = running_env(api, name="pol-del-n", auto_delete_interval=2 * SECONDS)
    stop(api, env["id"])
    wait_state(api, env["id"], "stopped")
    wait_state(api, env["id"], "deleted", timeout=30)
    assert actors_of(api, env["id"], "deleting")[-1] == "system:auto-delete"


def test_crashing_workload_is_restarted_with_backoff_when_auto_restart(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(
        api,
        name="pol-crashloop",
        auto_restart=True,
        command="echo run >> /workspace/runs; sleep 0.3; exit 3",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = api.get(f"/v1/environments/{env['id']}").json()
        if current["restart_count"] >= 3:
            break
        time.sleep(0.5)
    assert current["restart_count"] >= 3, current
    assert current["exit_code"] == 3
    restarts = [e for e in events(api, env["id"]) if e["data"].get("restart_count")]
    delays = [e["data"]["delay_seconds"] for e in restarts]
    assert delays == sorted(delays) and delays[-1] > 0  # back-off grows
    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped", timeout=60)
    # The first run and at least two restarts ran the workload (the third may be pending).
    assert read_file(docker_client, env["id"], "/workspace/runs").decode().count("run") >= 3
    delete(api, env["id"])


def test_without_auto_restart_an_exit_ends_in_error_or_stopped(api: httpx.Client) -> None:
    failing = running_env(api, name="pol-exit-3", command="sleep 0.5; exit 3")
    assert wait_state(api, failing["id"], "error", timeout=30)["exit_code"] == 3
    assert "code 3" in api.get(f"/v1/environments/{failing['id']}").json()["error_message"]
    done = create_env(api, name="pol-exit-0", command="sleep 0.5")
    stopped = wait_state(api, done["id"], "stopped", timeout=30)
    assert stopped["exit_code"] == 0 and stopped["desired_state"] == "stopped"
    time.sleep(2)  # several reconciler sweeps: an ended workload is not started again
    again = api.get(f"/v1/environments/{done['id']}").json()
    assert again["state"] == "stopped" and again["version"] == stopped["version"]
    # From error, a start runs the workload again.
    api.post(f"/v1/environments/{failing['id']}/start")
    wait_state(api, failing["id"], "error", timeout=30)
    delete(api, failing["id"])
    delete(api, done["id"])


def test_running_time_is_accounted_and_stops_accruing_when_stopped(api: httpx.Client) -> None:
    env = running_env(api, name="pol-usage")
    time.sleep(1.5)
    stop(api, env["id"], force=True)
    stopped = wait_state(api, env["id"], "stopped")
    assert stopped["running_seconds"] >= 1.0
    time.sleep(1.0)
    later = api.get(f"/v1/environments/{env['id']}").json()
    assert later["running_seconds"] == stopped["running_seconds"]
    usage = api.get("/v1/orgs/current/usage").json()
    assert usage["usage"]["running_seconds_this_month"] >= stopped["running_seconds"]
    delete(api, env["id"])


def test_a_running_process_session_keeps_the_environment_from_auto_stopping(
    api: httpx.Client,
) -> None:
    env = running_env(api, name="pol-held", auto_stop_interval=2 * SECONDS)
    started = api.post(
        f"/v1/environments/{env['id']}/processes", json={"command": "sleep 5; echo done"}
    )
    assert started.status_code in (200, 201), started.text
    time.sleep(4)  # twice the idle interval, all of it with the process running
    assert api.get(f"/v1/environments/{env['id']}").json()["state"] == "running"
    wait_state(api, env["id"], "stopped", timeout=30)  # idle once it ended
    assert actors_of(api, env["id"], "stopping")[-1] == "system:auto-stop"
    delete(api, env["id"])
