"""Exec inside an environment on the real Docker engine: exact results, streaming,
timeouts that kill the whole tree, large output, and refusals."""

import time

import httpx
import pytest

from tests.support.factories import assert_envelope, delete, running_env, stop, wait_state
from tests.support.inside import PeakRss, run, sh, sse_events
from tests.support.server import LiveServer

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

PY = (
    "import os, sys; data = sys.stdin.read(); "
    "print('out', os.getcwd(), os.environ['GREETING'], data); "
    "print('err line', file=sys.stderr); sys.exit(3)"
)
MIB = 1024 * 1024


def test_exec_returns_exact_stdout_stderr_and_exit_code(api: httpx.Client) -> None:
    env = running_env(api, name="exec-exact")
    sh(api, env["id"], "mkdir -p /workspace/sub")
    result = run(
        api,
        env["id"],
        ["python3", "-c", PY],
        cwd="/workspace/sub",
        env={"GREETING": "hello"},
        stdin="piped",
    )
    assert result["exit_code"] == 3  # a non-zero exit is still a 200 answer
    assert result["stdout"] == "out /workspace/sub hello piped\n"
    assert result["stderr"] == "err line\n"
    assert result["timed_out"] is False
    assert result["stdout_truncated"] is False and result["stderr_truncated"] is False
    assert isinstance(result["duration_ms"], int) and result["duration_ms"] >= 0
    # A shell string runs under /bin/sh -c; by name works like by id.
    assert run(api, "exec-exact", "echo $((6 * 7)) | tee /dev/stderr")["stderr"] == "42\n"
    delete(api, env["id"])


def test_streaming_exec_delivers_output_before_the_command_ends(api: httpx.Client) -> None:
    env = running_env(api, name="exec-stream")
    command = (
        "echo first; while [ ! -e /tmp/release ]; do sleep 0.05; done; echo second >&2; exit 5"
    )
    url = f"/v1/environments/{env['id']}/exec/stream"
    with api.stream("POST", url, json={"command": command}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert next(events) == ("stdout", None, {"data": "first\n"})
        # The command is still blocked: only now is it released.
        sh(api, env["id"], "touch /tmp/release")
        rest = list(events)
    assert rest[0] == ("stderr", None, {"data": "second\n"})
    kind, _, end = rest[-1]
    assert kind == "exit" and end["exit_code"] == 5 and end["timed_out"] is False
    delete(api, env["id"])


def test_timeout_kills_the_command_and_all_its_children(api: httpx.Client) -> None:
    env = running_env(api, name="exec-timeout")
    command = "sleep 1000 & sleep 1000 & (setsid sleep 1001 &); echo started; wait"
    result = run(api, env["id"], command, timeout=1)
    assert result["timed_out"] is True
    assert result["exit_code"] == 137  # SIGKILL
    assert result["stdout"] == "started\n"
    processes = sh(api, env["id"], "ps -eo args")
    assert "sleep 1000" not in processes and "sleep 1001" not in processes, processes
    assert "/.sandbay/envd init" in processes  # the agent itself is untouched
    delete(api, env["id"])


def test_closing_a_stream_kills_its_command(api: httpx.Client) -> None:
    env = running_env(api, name="exec-hangup")
    url = f"/v1/environments/{env['id']}/exec/stream"
    with api.stream("POST", url, json={"command": "echo up; exec sleep 1002"}) as response:
        assert next(sse_events(response))[2] == {"data": "up\n"}
    # The server notices the hang-up and kills the tree; poll until it has.
    for _ in range(100):
        if "sleep 1002" not in sh(api, env["id"], "ps -eo args"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the command outlived its stream")
    delete(api, env["id"])


def test_large_output_is_capped_when_collected_and_whole_when_streamed(
    api: httpx.Client, server: LiveServer
) -> None:
    env = running_env(api, name="exec-large")
    hundred_mb = "head -c 100000000 /dev/zero | tr '\\0' a"
    result = run(api, env["id"], hundred_mb)
    assert result["exit_code"] == 0
    assert result["stdout_truncated"] is True
    assert result["stdout_bytes"] == 100_000_000
    assert len(result["stdout"]) == 10 * MIB  # the server's default cap
    url = f"/v1/environments/{env['id']}/exec/stream"
    received = 0
    with (
        PeakRss(server) as rss,
        api.stream("POST", url, json={"command": hundred_mb}) as response,
    ):
        for kind, _, data in sse_events(response):
            if kind == "stdout":
                received += len(data["data"])
            elif kind == "exit":
                assert data["exit_code"] == 0
    assert received == 100_000_000
    print(f"server RSS growth: {rss.growth / MIB:.1f} MiB")  # shown with -s
    assert rss.growth < 50 * MIB, rss.growth
    delete(api, env["id"])


def test_exec_with_a_missing_directory_or_user_is_a_clear_400(api: httpx.Client) -> None:
    env = running_env(api, name="exec-bad")
    url = f"/v1/environments/{env['id']}/exec"
    message = assert_envelope(
        api.post(url, json={"command": ["true"], "cwd": "/nope"}), 400, "invalid_request_error"
    )
    assert "/nope" in message
    assert_envelope(
        api.post(url, json={"command": ["true"], "user": "nobody-here"}),
        400,
        "invalid_request_error",
    )
    assert_envelope(api.post(url, json={"command": []}), 400, "invalid_request_error")
    delete(api, env["id"])


def test_inside_operations_on_a_stopped_environment_are_409(api: httpx.Client) -> None:
    env = running_env(api, name="exec-stopped")
    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped")
    base = f"/v1/environments/{env['id']}"
    for response in (
        api.post(f"{base}/exec", json={"command": "true"}),
        api.post(f"{base}/exec/stream", json={"command": "true"}),
        api.post(f"{base}/processes", json={"command": "true"}),
        api.put(f"{base}/files", params={"path": "/workspace/a"}, content=b"x"),
        api.get(f"{base}/files", params={"path": "/etc/hostname"}),
        api.get(f"{base}/files/list"),
    ):
        message = assert_envelope(response, 409, "conflict_error")
        assert "stopped" in message
    # What the server holds stays readable: logs, metrics, processes.
    assert api.get(f"{base}/logs").status_code == 200
    assert api.get(f"{base}/metrics").status_code == 200
    assert api.get(f"{base}/processes").json() == {"data": []}
    delete(api, env["id"])


def test_exec_needs_the_exec_permission_and_counts_as_activity(
    api: httpx.Client, server: LiveServer
) -> None:
    env = running_env(api, name="exec-perm")
    key = api.post("/v1/keys", json={"name": "reader", "permissions": ["environments:read"]})
    reader = key.json()["key"]
    with server.client(reader) as client:
        denied = client.post(f"/v1/environments/{env['id']}/exec", json={"command": "true"})
        assert_envelope(denied, 403, "permission_error")
        assert client.get(f"/v1/environments/{env['id']}/logs").status_code == 200
        assert client.get(f"/v1/environments/{env['id']}/metrics").status_code == 200
    before = api.get(f"/v1/environments/{env['id']}").json()["last_activity_at"]
    run(api, env["id"], "sleep 1.1")  # activity is recorded at most once a second
    run(api, env["id"], "true")
    after = api.get(f"/v1/environments/{env['id']}").json()["last_activity_at"]
    assert after > before
    delete(api, env["id"])
