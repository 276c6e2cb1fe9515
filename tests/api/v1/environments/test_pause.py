"""Pause and resume on the real engine: the workload is frozen in place (the engine's
cgroup freezer) with its memory, and thawed where it was; nothing written before,
between or after is lost (E2B #884: write, pause, resume, write, pause, resume, read)."""

import docker
import httpx

from tests.support.factories import delete, events, running_env, wait_state
from tests.support.inside import sh

#: A program that holds its state only in memory: a counter it prints to a file.
COUNTER = (
    'python3 -c "import time\n'
    "n = 0\n"
    "while True:\n"
    "    n += 1\n"
    "    open('/tmp/count.new', 'w').write(str(n))\n"
    "    __import__('os').replace('/tmp/count.new', '/tmp/count')\n"
    '    time.sleep(0.01)"'
)


def _pause(api: httpx.Client, env_id: str) -> dict[str, object]:
    response = api.post(f"/v1/environments/{env_id}/pause")
    assert response.status_code == 200, response.text
    return wait_state(api, env_id, "paused")


def _resume(api: httpx.Client, env_id: str) -> dict[str, object]:
    response = api.post(f"/v1/environments/{env_id}/resume")
    assert response.status_code == 200, response.text
    return wait_state(api, env_id, "running")


def test_pause_resume_twenty_times_keeps_memory_and_every_file(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="pause-counter", command=COUNTER)
    env_id = env["id"]
    pid = sh(api, env_id, "pgrep -f count.new").split()[0]
    last = 0
    for i in range(20):
        sh(api, env_id, f"echo w{i} > /workspace/before-{i}; echo r{i} > /opt/before-{i}")
        paused = _pause(api, env_id)
        assert paused["holds_memory"] is True and paused["desired_state"] == "paused"
        assert docker_client.api.inspect_container(f"sandbay-{env_id}")["State"]["Paused"]
        refused = api.post(f"/v1/environments/{env_id}/exec", json={"command": "true"})
        assert refused.status_code == 409 and "resume" in refused.json()["error"]["message"]
        # Idempotent while paused.
        assert api.post(f"/v1/environments/{env_id}/pause").json()["state"] == "paused"
        _resume(api, env_id)
        count = int(sh(api, env_id, "cat /tmp/count"))
        assert count >= last, "the counter went back: the program was restarted"
        last = count
        sh(api, env_id, f"echo a{i} > /workspace/after-{i}")
    # The same process all along, still counting.
    assert sh(api, env_id, "pgrep -f count.new").split()[0] == pid
    listing = sh(
        api, env_id, "cat " + " ".join(
            f"/workspace/before-{i} /opt/before-{i} /workspace/after-{i}" for i in range(20)
        ),
    )  # fmt: skip
    assert listing.split() == [w for i in range(20) for w in (f"w{i}", f"r{i}", f"a{i}")]
    moves = [(e["from_state"], e["to_state"]) for e in events(api, env_id) if e["to_state"]]
    assert moves.count(("paused", "resuming")) == 20
    delete(api, env_id)


def test_a_paused_environment_stops_and_starts_again(api: httpx.Client) -> None:
    env = running_env(api, name="pause-stop")
    env_id = env["id"]
    sh(api, env_id, "echo kept > /workspace/kept")
    _pause(api, env_id)
    # A graceful stop of a frozen workload: it is thawed to take the signal.
    assert api.post(f"/v1/environments/{env_id}/stop").status_code == 200
    stopped = wait_state(api, env_id, "stopped")
    assert stopped["holds_memory"] is False
    refused = api.post(f"/v1/environments/{env_id}/resume")
    assert refused.status_code == 409 and "only a paused" in refused.json()["error"]["message"]
    refused = api.post(f"/v1/environments/{env_id}/pause")
    assert refused.status_code == 409 and "only a running" in refused.json()["error"]["message"]
    # A start of a paused one resumes it; of a stopped one starts it.
    api.post(f"/v1/environments/{env_id}/start")
    wait_state(api, env_id, "running")
    _pause(api, env_id)
    assert api.post(f"/v1/environments/{env_id}/start").status_code == 200
    wait_state(api, env_id, "running")
    assert sh(api, env_id, "cat /workspace/kept").strip() == "kept"
    _pause(api, env_id)
    delete(api, env_id)


def test_idle_environment_is_paused_before_it_is_stopped(api: httpx.Client) -> None:
    env = running_env(
        api, name="pause-idle", auto_pause_interval=0.02, auto_stop_interval=0.07
    )  # 1.2 s idle → paused; 4 s idle → stopped
    env_id = env["id"]
    paused = wait_state(api, env_id, "paused")
    assert paused["auto_stop_at"] is not None  # auto-stop keeps counting while paused
    pause = [e for e in events(api, env_id) if e["to_state"] == "pausing"][-1]
    assert pause["actor"] == "system:auto-pause"
    wait_state(api, env_id, "stopped")
    stop = [e for e in events(api, env_id) if e["to_state"] == "stopping"][-1]
    assert stop["actor"] == "system:auto-stop"
    delete(api, env_id)
