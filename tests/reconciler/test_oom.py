"""An OOM kill inside an environment is recorded: a process the kernel killed in
its cgroup is an `environment.oom_killed` event; a workload killed so is also the
environment's error. Another environment is not affected."""

from typing import Any

import httpx

from tests.support.factories import delete, events, running_env, wait_state
from tests.support.polling import eventually

HOG = "python3 -c 'a = bytearray(512 * 1024 * 1024)'"


def _oom_events(api: httpx.Client, env: str) -> list[dict[str, Any]]:
    return [e for e in events(api, env) if e["type"] == "environment.oom_killed"]


def test_memory_hog_exec_is_recorded_and_another_environment_is_unaffected(
    api: httpx.Client,
) -> None:
    small = running_env(api, name="oom-small", memory_mb=128)
    other = running_env(api, name="oom-other", memory_mb=256)
    hog = api.post(f"/v1/environments/{small['id']}/exec", json={"command": HOG})
    assert hog.status_code == 200, hog.text
    assert hog.json()["exit_code"] == 137  # SIGKILL from the kernel
    found = eventually(lambda: _oom_events(api, small["id"]), what="oom_killed event", timeout=30)
    assert found[0]["data"]["workload"] is False
    assert found[0]["data"]["processes"] >= 1
    assert "out of memory" in found[0]["reason"]
    # The environment itself keeps running; the other one answers as before.
    assert api.get(f"/v1/environments/{small['id']}").json()["state"] == "running"
    echo = api.post(f"/v1/environments/{other['id']}/exec", json={"command": "echo fine"})
    assert echo.json()["exit_code"] == 0 and echo.json()["stdout"] == "fine\n"
    assert _oom_events(api, other["id"]) == []
    delete(api, small["id"])
    delete(api, other["id"])


def test_workload_killed_by_oom_shows_on_the_environment(api: httpx.Client) -> None:
    # The hog starts once the collector has sampled the running container (it
    # records the kill it sees when the container is gone).
    gate = f"while [ ! -e /tmp/go ]; do sleep 0.1; done; {HOG}"
    env = running_env(api, name="oom-workload", memory_mb=128, command=gate)
    eventually(
        lambda: any(
            s["online"] for s in api.get(f"/v1/environments/{env['id']}/metrics").json()["data"]
        ),
        what="a sample of the running container",
    )
    go = api.post(f"/v1/environments/{env['id']}/exec", json={"command": "touch /tmp/go"})
    assert go.status_code == 200, go.text
    ended = wait_state(api, env["id"], "error")
    assert ended["error_message"].startswith("killed: out of memory"), ended
    assert ended["exit_code"] == 137
    found = eventually(lambda: _oom_events(api, env["id"]), what="oom_killed event", timeout=30)
    assert any(e["data"]["workload"] for e in found), found
    delete(api, env["id"])
