"""Daytona's SDK, unchanged, reads a sandbox's resource use on real Docker: the live
sample (`get_metrics_latest`) and the history (`get_metrics`), in Daytona's units,
following a CPU-bound loop, memory held by a process and a file written to disk."""

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    Sandbox,
    SessionExecuteRequest,
)

from tests.support.factories import delete
from tests.support.polling import eventually
from tests.support.server import LiveServer

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
MIB = 1024 * 1024
GIB = 1024 * MIB
LOAD = (
    "timeout 120 sh -c 'while :; do :; done' &"
    " python3 -c 'b = bytearray(300 * 1024 * 1024); import time; time.sleep(120)' &"
    " dd if=/dev/urandom of=/workspace/blob bs=1M count=64 status=none"
)


@pytest.fixture(scope="module")
def loaded(server: LiveServer) -> Iterator[Sandbox]:
    """A sandbox (1 CPU, 1 GiB, 3 GiB disk) with one CPU-bound loop, 300 MiB held by a
    process and a 64 MiB file, for two minutes."""
    daytona = Daytona(DaytonaConfig(api_key=server.key, api_url=server.url))
    box = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    try:
        box.process.create_session("load")
        box.process.execute_session_command(
            "load", SessionExecuteRequest(command=LOAD, run_async=True)
        )
        yield box
    finally:
        with server.client() as api:
            delete(api, box.id)  # waits until its container is gone


def test_latest_sample_shows_cpu_memory_and_disk_in_daytonas_units(loaded: Sandbox) -> None:
    assert (loaded.cpu, loaded.memory, loaded.disk) == (1, 1, 3)
    busy = eventually(
        lambda: (
            (m := loaded.get_metrics_latest()).cpu_used_pct > 30
            and m.mem_used > 300 * MIB
            and m.disk_used > 64 * MIB
            and m
        ),
        what="the load to show",
    )
    assert busy.cpu_count == 1
    assert busy.cpu_used_pct <= 110  # percent of the sandbox's one CPU
    assert busy.mem_total == GIB and busy.mem_used < GIB
    assert busy.disk_total == 3 * GIB
    assert busy.mem_cache > 0  # the file just written is in the page cache
    assert abs(busy.timestamp - datetime.now(UTC)) < timedelta(minutes=5)


def test_history_is_a_series_of_samples_under_load(loaded: Sandbox) -> None:
    eventually(lambda: loaded.get_metrics_latest().mem_used > 300 * MIB, what="the load")
    history = eventually(
        lambda: [m for m in loaded.get_metrics() if m.mem_used > 300 * MIB][:2],
        what="two samples under load",
    )
    samples = loaded.get_metrics()
    assert [m.timestamp for m in samples] == sorted({m.timestamp for m in samples})
    assert loaded.created_at and samples[0].timestamp >= datetime.fromisoformat(loaded.created_at)
    assert all(m.cpu_count == 1 and m.mem_total == GIB for m in samples)
    assert any(m.cpu_used_pct > 30 for m in samples)
    assert all(m.mem_used > 300 * MIB for m in history)
    # A window in the past holds nothing; one around now what was sampled in it.
    long_ago = datetime.now(UTC) - timedelta(days=2)
    assert loaded.get_metrics(long_ago, long_ago + timedelta(hours=1)) == []
    recent = loaded.get_metrics(datetime.now(UTC) - timedelta(minutes=10))
    assert len(recent) >= len(history)


def test_telemetry_filters_by_metric_name_and_checks_its_range(
    loaded: Sandbox, server: LiveServer
) -> None:
    now = datetime.now(UTC)
    params: dict[str, str | list[str]] = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": now.isoformat(),
        "metricNames": ["daytona.sandbox.cpu.limit", "daytona.sandbox.memory.limit"],
    }
    with server.client() as api:
        url = f"/sandbox/{loaded.id}/telemetry/metrics"
        eventually(lambda: api.get(url, params=params).json()["series"][0]["dataPoints"])
        series = api.get(url, params=params).json()["series"]
        assert [s["metricName"] for s in series] == params["metricNames"]
        assert {p["value"] for p in series[1]["dataPoints"]} == {GIB}
        backwards = api.get(url, params={**params, "from": params["to"], "to": params["from"]})
        assert backwards.status_code == 400
        assert api.get(url, params={"from": "yesterday", "to": "now"}).status_code == 400
    with httpx.Client() as anon:
        assert anon.get(f"{server.url}{url}", params=params).status_code == 401


def test_async_sdk_reads_metrics(
    loaded: Sandbox, async_config: Callable[[], DaytonaConfig]
) -> None:
    async def body() -> tuple[int, int, int]:
        async with AsyncDaytona(async_config()) as daytona:
            box = await daytona.get(loaded.id)
            latest = await box.get_metrics_latest()
            history = await box.get_metrics()
            return latest.cpu_count, latest.disk_total, len(history)

    eventually(lambda: loaded.get_metrics(), what="a first sample")
    assert asyncio.run(body())[:2] == (1, 3 * GIB)
