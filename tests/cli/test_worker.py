"""The reference worker (`sandbay worker -- COMMAND`) as real processes against a live
server: many workers share a queue and run every item once; a worker killed with
SIGKILL mid-item loses it to another after the heartbeat timeout and its command
dies with it; a graceful stop lets the command drain before the item is stopped;
a force stop does not wait."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.polling import eventually
from tests.support.server import LiveServer
from tests.support.work import (
    get_item,
    native,
    qoder,
    queue,
    work_transitions,
)

SANDBAY = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sandbay")
COMMAND = [sys.executable, str(Path(__file__).resolve().parents[1] / "support" / "work_command.py")]
StartWorker = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def work_log(tmp_path: Path) -> Path:
    return tmp_path / "work.log"


@pytest.fixture
def start_worker(
    lease_server: LiveServer, lease_env: str, work_log: Path, tmp_path: Path
) -> Iterator[StartWorker]:
    """Start `sandbay worker` processes on `lease_env` (2 s leases, 0.2 s heartbeats);
    any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str] = COMMAND) -> "subprocess.Popen[bytes]":
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SANDBAY_API_URL": lease_server.url,
            "SANDBAY_API_KEY": lease_server.key,
            "WORK_LOG": str(work_log),
        }
        argv = [SANDBAY, "worker", "--environment", lease_env, "--worker-id", name]
        argv += ["--ttl", "2", "--heartbeat-interval", "0.2", "--block-ms", "500", "--"]
        with (tmp_path / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen([*argv, *command], env=environ, stdout=out, stderr=out)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def lines(work_log: Path) -> list[list[str]]:
    """The command's records: [event, work id, worker id, pid, time, key|nokey]."""
    if not work_log.exists():
        return []
    return [line.split() for line in work_log.read_text().splitlines() if line.strip()]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def stop_gracefully(*workers: "subprocess.Popen[bytes]") -> None:
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    for proc in workers:
        assert proc.wait(60) == 0


def all_stopped(api: httpx.Client, env: str, count: int) -> bool:
    stats = api.get(native(env, "/stats")).json()
    return bool(stats["by_state"]["stopped"] == count)


def env_events(api: httpx.Client, env: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after else {})
        page = api.get(f"/v1/environments/{env}/events", params=params).json()
        events += page["data"]
        if not page["has_more"]:
            return events
        after = page["next_cursor"]


def test_four_workers_run_each_of_200_items_exactly_once(
    lease_api: httpx.Client, lease_env: str, work_log: Path, start_worker: StartWorker
) -> None:
    made = [queue(lease_api, lease_env, data={"n": n})["id"] for n in range(200)]
    shell = ["/bin/sh", "-c", 'echo "$SANDBAY_WORK_ID ${SANDBAY_API_KEY:-nokey}" >> "$WORK_LOG"']
    workers = [start_worker(f"w-{n}", shell) for n in range(4)]
    eventually(lambda: all_stopped(lease_api, lease_env, 200), timeout=240, every=0.5)
    stop_gracefully(*workers)

    ran = Counter(line[0] for line in lines(work_log))
    assert set(ran) == set(made) and set(ran.values()) == {1}
    assert {line[1] for line in lines(work_log)} == {"nokey"}  # the key stays with the worker
    items = lease_api.get(native(lease_env), params={"limit": 1000}).json()["data"]
    assert {i["metadata"]["exit_code"] for i in items} == {"0"}
    assert {i["attempts"] for i in items} == {1}
    starts = Counter(
        e["data"]["work_id"]
        for e in env_events(lease_api, lease_env)
        if e["type"] == "work.state_changed" and e["to_state"] == "starting"
    )
    assert set(starts.values()) == {1} and len(starts) == 200  # never held by two workers
    assert len({i["worker_id"] for i in items}) > 1  # the queue was shared


def test_killed_worker_loses_its_item_to_another_after_the_heartbeat_timeout(
    lease_api: httpx.Client, lease_env: str, work_log: Path, start_worker: StartWorker
) -> None:
    made = [queue(lease_api, lease_env, data={"sleep": 2})["id"] for _ in range(8)]
    victim = start_worker("victim")
    eventually(lambda: any(ln[0] == "start" and ln[2] == "victim" for ln in lines(work_log)))
    others = [start_worker(f"w-{n}") for n in range(3)]
    victim.kill()  # SIGKILL: no shutdown code runs
    victim.wait()
    started = [ln for ln in lines(work_log) if ln[0] == "start" and ln[2] == "victim"]
    finished = {ln[1] for ln in lines(work_log) if ln[0] == "done" and ln[2] == "victim"}
    lost = [ln for ln in started if ln[1] not in finished]
    assert len(lost) == 1, started
    lost_id, lost_pid = lost[0][1], int(lost[0][3])
    eventually(lambda: not alive(lost_pid), timeout=10)  # its command died with it

    eventually(lambda: all_stopped(lease_api, lease_env, len(made)), timeout=120, every=0.5)
    stop_gracefully(*others)
    records = lines(work_log)
    done = Counter(ln[1] for ln in records if ln[0] == "done")
    assert set(done) == set(made) and set(done.values()) == {1}  # nothing ran twice
    starts = Counter(ln[1] for ln in records if ln[0] == "start")
    assert starts[lost_id] == 2 and all(starts[i] == 1 for i in made if i != lost_id)
    assert next(ln[2] for ln in records if ln[0] == "done" and ln[1] == lost_id) != "victim"
    item = get_item(lease_api, lease_env, lost_id)
    assert item["attempts"] == 2 and item["metadata"]["exit_code"] == "0"
    assert ("active", "queued", "lease expired; re-queued after attempt 1 of 3") in (
        work_transitions(lease_api, lease_env, lost_id)
    )


def test_graceful_stop_lets_the_command_drain_before_the_item_is_stopped(
    lease_api: httpx.Client, lease_env: str, work_log: Path, start_worker: StartWorker
) -> None:
    item = queue(lease_api, lease_env, data={"sleep": 60, "drain": 1.5})
    worker = start_worker("drainer")
    eventually(lambda: any(ln[0] == "start" for ln in lines(work_log)))
    eventually(lambda: get_item(lease_api, lease_env, item["id"])["state"] == "active")
    stopping = lease_api.post(qoder(lease_env, f"/{item['id']}/stop"), json={})
    assert stopping.status_code == 200 and stopping.json()["state"] == "stopping"

    seen_draining = False
    while (state := get_item(lease_api, lease_env, item["id"])["state"]) != "stopped":
        assert state == "stopping"
        events = {ln[0] for ln in lines(work_log)}
        seen_draining |= "term" in events and "drained" not in events
        time.sleep(0.05)
    assert seen_draining  # the item stayed `stopping` while the command drained
    stopped = get_item(lease_api, lease_env, item["id"])
    drained = next(ln for ln in lines(work_log) if ln[0] == "drained")
    stopped_at = datetime.fromisoformat(stopped["stopped_at"]).timestamp()
    assert float(drained[4]) <= stopped_at  # the marker was written before `stopped`
    assert "done" not in {ln[0] for ln in lines(work_log)}
    assert stopped["metadata"]["exit_code"] == "0"
    assert work_transitions(lease_api, lease_env, item["id"])[-1] == (
        "stopping",
        "stopped",
        "stop confirmed",
    )
    stop_gracefully(worker)


def test_force_stop_does_not_wait_and_the_command_is_killed(
    lease_api: httpx.Client, lease_env: str, work_log: Path, start_worker: StartWorker
) -> None:
    item = queue(lease_api, lease_env, data={"sleep": 60, "ignore_term": True})
    worker = start_worker("forced")
    eventually(lambda: any(ln[0] == "start" for ln in lines(work_log)))
    eventually(lambda: get_item(lease_api, lease_env, item["id"])["state"] == "active")
    pid = int(next(ln for ln in lines(work_log) if ln[0] == "start")[3])
    stopped = lease_api.post(qoder(lease_env, f"/{item['id']}/stop"), json={"force": True})
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert stopped.json()["stopped_at"] is not None

    eventually(lambda: not alive(pid), timeout=30)  # killed on the worker's next heartbeat
    assert {ln[0] for ln in lines(work_log)} == {"start"}  # no drain, no completion
    assert work_transitions(lease_api, lease_env, item["id"])[-1] == (
        "active",
        "stopped",
        "force stop",
    )
    # The worker carries on with the next item.
    after = queue(lease_api, lease_env, data={"sleep": 0})
    eventually(lambda: get_item(lease_api, lease_env, after["id"])["state"] == "stopped")
    assert [ln[0] for ln in lines(work_log) if ln[1] == after["id"]] == ["start", "done"]
    stop_gracefully(worker)


def test_a_command_that_cannot_run_fails_the_item_not_the_worker(
    lease_api: httpx.Client, lease_env: str, start_worker: StartWorker
) -> None:
    worker = start_worker("broken", ["/nonexistent/command"])
    items = [queue(lease_api, lease_env)["id"] for _ in range(2)]
    eventually(lambda: all_stopped(lease_api, lease_env, 2))
    assert {get_item(lease_api, lease_env, i)["metadata"]["exit_code"] for i in items} == {"127"}
    assert worker.poll() is None
    stop_gracefully(worker)
