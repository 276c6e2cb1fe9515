"""Live metrics from the real engine (the test server samples every second)."""

import statistics
import time
from datetime import datetime
from typing import Any

import httpx

from tests.support.factories import delete, running_env, stop, wait_state
from tests.support.inside import METRIC_FIELDS, sh

MIB = 1024 * 1024


def _samples(api: httpx.Client, env: str, count: int, *, after: str | None = None) -> list[Any]:
    """Wait until `count` samples newer than `after` exist; return them."""
    for _ in range(600):
        params = {"since": after} if after else {}
        data = api.get(f"/v1/environments/{env}/metrics", params=params).json()["data"]
        online = [s for s in data if s["online"]]
        if len(online) >= count:
            return online
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} samples of {env}")


def test_cpu_burning_workload_shows_cpu_near_its_limit(api: httpx.Client) -> None:
    env = running_env(
        api, name="metrics-cpu", cpu=0.5, memory_mb=256, command=["python3", "-c", "while 1: pass"]
    )
    first = _samples(api, env["id"], 1)[-1]
    # Rates between later samples (the first is an average since start).
    cpu = [s["cpu_percent"] for s in _samples(api, env["id"], 4, after=first["timestamp"])]
    assert 35 <= statistics.median(cpu) <= 65, cpu
    latest = api.get(f"/v1/environments/{env['id']}").json()["metrics"]
    assert latest["online"] is True
    assert latest["memory_limit_bytes"] == 256 * MIB
    assert 0 < latest["memory_bytes"] < 256 * MIB
    assert latest["pids"] >= 2  # init and the workload
    assert latest["uptime_seconds"] >= 0
    assert set(latest) >= METRIC_FIELDS
    delete(api, env["id"])


def test_network_counters_grow_after_traffic_between_environments(api: httpx.Client) -> None:
    web = running_env(
        api, name="metrics-web", command="cd /workspace && exec python3 -m http.server 8000"
    )
    sh(api, web["id"], "head -c 5000000 /dev/zero > /workspace/blob")
    address = sh(api, web["id"], "hostname -i").split()[0]
    # Another environment is reached only when the allow list names it.
    client = running_env(api, name="metrics-client", network_allow_list=[f"{address}/32"])
    before_client = _samples(api, client["id"], 1)[-1]
    before_web = _samples(api, web["id"], 1)[-1]
    # Traffic between the project's own containers on the engine's bridge.
    fetched = sh(
        api,
        client["id"],
        f"for i in $(seq 50); do curl -sf -o /dev/null -w '%{{size_download}}' "
        f"http://{address}:8000/blob && break; sleep 0.1; done",
    )
    assert fetched == "5000000"
    after_client = _samples(api, client["id"], 1, after=_now(api, client["id"]))[-1]
    after_web = _samples(api, web["id"], 1, after=after_client["timestamp"])[-1]
    assert after_client["network_rx_bytes"] - before_client["network_rx_bytes"] >= 5_000_000
    assert after_web["network_tx_bytes"] - before_web["network_tx_bytes"] >= 5_000_000
    delete(api, web["id"])
    delete(api, client["id"])


def _now(api: httpx.Client, env: str) -> str:
    """The newest sample's time: samples after it were taken after this call."""
    return str(api.get(f"/v1/environments/{env}").json()["metrics"]["timestamp"])


def test_sampling_is_not_activity_and_a_stopped_environment_shows_offline(
    api: httpx.Client,
) -> None:
    env = running_env(api, name="metrics-idle")
    first = _samples(api, env["id"], 1)[-1]
    seen = api.get(f"/v1/environments/{env['id']}").json()
    _samples(api, env["id"], 2, after=first["timestamp"])
    again = api.get(f"/v1/environments/{env['id']}").json()
    assert again["metrics"]["timestamp"] > seen["metrics"]["timestamp"]
    assert again["last_activity_at"] == seen["last_activity_at"]
    assert again["version"] == seen["version"]  # a sample is not a state change

    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped")
    for _ in range(100):
        metrics = api.get(f"/v1/environments/{env['id']}").json()["metrics"]
        if not metrics["online"]:
            break
        time.sleep(0.1)
    assert metrics["online"] is False and metrics["cpu_percent"] == 0
    history = api.get(f"/v1/environments/{env['id']}/metrics").json()["data"]
    stamps = [datetime.fromisoformat(s["timestamp"]) for s in history]
    assert stamps == sorted(stamps) and history[-1]["online"] is False
    delete(api, env["id"])


def test_a_new_environment_has_null_metrics(api: httpx.Client) -> None:
    created = api.post("/v1/environments", json={"name": "metrics-new"}).json()
    assert created["metrics"] is None
    delete(api, created["id"])
