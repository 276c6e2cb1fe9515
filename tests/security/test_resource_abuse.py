"""Resource abuse stays inside its environment (issue 16): a fork bomb stops at the
environment's pids limit and a memory hog is killed at its memory limit, while
another environment's exec keeps answering; afterwards the abuser's processes are
gone and its agent still serves."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support.factories import delete, running_env
from tests.support.inside import sh, sse_events
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = pytest.mark.docker
PIDS_LIMIT = 64
MEMORY_MB = 256
#: Forks children that sleep until the limit refuses one, says so, and holds them.
FORK_BOMB = """
import os, time
n = 0
try:
    while n < 100000:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError as exc:
    print("full", n, exc.errno, flush=True)
time.sleep(600)
"""
#: Holds three quarters of the limit until /tmp/release exists, then takes more.
MEMORY_HOG = f"""
import os, time
held = []
while len(held) * 16 < {MEMORY_MB * 3 // 4}:
    held.append(bytearray(16 << 20))
print("holding", flush=True)
while not os.path.exists("/tmp/release"):
    time.sleep(0.05)
while True:
    held.append(bytearray(16 << 20))
"""
COUNT_PROCESSES = "ls /proc | grep -c '^[0-9]'"


@pytest.fixture(scope="module")
def pair(api_module: httpx.Client) -> Iterator[tuple[str, str]]:
    """An abuser with small limits and a bystander."""
    abuser = running_env(api_module, name="abuse-a", pids_limit=PIDS_LIMIT, memory_mb=MEMORY_MB)
    bystander = running_env(api_module, name="abuse-b")
    yield abuser["id"], bystander["id"]
    delete(api_module, abuser["id"])
    delete(api_module, bystander["id"])


@pytest.fixture(scope="module")
def api_module(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _bystander_answers(api: httpx.Client, env: str) -> None:
    assert sh(api, env, "echo still here") == "still here\n"


def test_fork_bomb_stops_at_the_pids_limit_and_is_cleaned(
    api_module: httpx.Client, pair: tuple[str, str]
) -> None:
    api, (abuser, bystander) = api_module, pair
    baseline = int(sh(api, abuser, COUNT_PROCESSES))
    url = f"/v1/environments/{abuser}/exec/stream"
    with api.stream("POST", url, json={"command": ["python3", "-c", FORK_BOMB]}) as response:
        assert response.status_code == 200
        _, _, first = next(sse_events(response))
        word, forks, err = first["data"].split()
        assert word == "full" and err == "11", first  # EAGAIN from the pids controller
        assert int(forks) < PIDS_LIMIT
        # The abuser holds every pid it may have: the other environment is untouched.
        _bystander_answers(api, bystander)
    # Closing the stream kills the command's tree: the abuser comes back to where it was.
    eventually(
        lambda: int(sh(api, abuser, COUNT_PROCESSES)) == baseline,
        what="the fork bomb's processes gone",
        timeout=30,
    )
    assert sh(api, abuser, "cat /proc/1/comm") == "envd\n"


def test_memory_hog_is_killed_at_the_limit_and_only_it(
    api_module: httpx.Client, pair: tuple[str, str]
) -> None:
    api, (abuser, bystander) = api_module, pair
    url = f"/v1/environments/{abuser}/exec/stream"
    with api.stream("POST", url, json={"command": ["python3", "-c", MEMORY_HOG]}) as response:
        assert response.status_code == 200
        events = sse_events(response)
        assert next(events) == ("stdout", None, {"data": "holding\n"})
        _bystander_answers(api, bystander)
        sh(api, abuser, "touch /tmp/release")
        kind, _, end = list(events)[-1]
    assert kind == "exit" and end["exit_code"] == 137, end  # SIGKILL by the OOM killer
    _bystander_answers(api, bystander)
    assert sh(api, abuser, "cat /proc/1/comm") == "envd\n"
    assert "python3" not in sh(api, abuser, "ps -eo comm")
