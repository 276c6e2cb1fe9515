"""Background processes and the interactive terminal on the real Docker engine."""

import json
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.factories import assert_envelope, delete, running_env
from tests.support.inside import sh, sse_events
from tests.support.server import LiveServer


def _until(check: object, what: str) -> None:
    for _ in range(200):
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_background_process_takes_input_keeps_output_and_is_signalled(api: httpx.Client) -> None:
    env = running_env(api, name="proc-life")
    base = f"/v1/environments/{env['id']}/processes"
    started = api.post(
        base,
        json={
            "command": "echo ready; read line; echo got $line; echo oops >&2; sleep 1003",
            "stdin": True,
        },
    )
    assert started.status_code == 201, started.text
    proc = started.json()
    assert proc["status"] == "running" and proc["id"].startswith("proc_") and proc["pid"] > 1
    url = f"{base}/{proc['id']}"

    written = api.post(f"{url}/stdin", json={"data": "hello\n"})
    assert written.status_code == 200
    _until(lambda: "got hello" in api.get(f"{url}/output").json()["stdout"], "the echo")
    out = api.get(f"{url}/output").json()
    assert out["stdout"] == "ready\ngot hello\n" and out["stderr"] == "oops\n"
    later = api.get(f"{url}/output", params={"stdout_offset": out["stdout_next_offset"]}).json()
    assert later["stdout"] == "" and later["dropped"] is False

    assert [p["id"] for p in api.get(base).json()["data"]] == [proc["id"]]
    assert "sleep 1003" in sh(api, env["id"], "ps -eo args")

    signalled = api.post(f"{url}/signal", json={"signal": "TERM"})
    assert signalled.status_code == 200
    _until(lambda: api.get(url).json()["status"] == "exited", "the exit")
    assert api.get(url).json()["exit_code"] == 143
    assert "sleep 1003" not in sh(api, env["id"], "ps -eo args")
    assert_envelope(api.post(f"{url}/stdin", json={"data": "x"}), 409, "conflict_error")

    assert api.delete(url).status_code == 200
    assert_envelope(api.get(url), 404, "not_found_error")
    delete(api, env["id"])


def test_following_a_process_streams_its_output_to_the_exit(api: httpx.Client) -> None:
    env = running_env(api, name="proc-follow")
    base = f"/v1/environments/{env['id']}/processes"
    proc = api.post(
        base,
        json={"command": "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two"},
    ).json()
    with api.stream("GET", f"{base}/{proc['id']}/output", params={"follow": True}) as response:
        events = sse_events(response)
        assert next(events) == ("stdout", None, {"data": "one\n"})
        sh(api, env["id"], "touch /tmp/go")
        rest = list(events)
    assert rest[0] == ("stdout", None, {"data": "two\n"})
    assert rest[-1][0] == "exit" and rest[-1][2]["exit_code"] == 0
    delete(api, env["id"])


def test_deleting_a_process_kills_its_whole_tree(api: httpx.Client) -> None:
    env = running_env(api, name="proc-kill")
    base = f"/v1/environments/{env['id']}/processes"
    proc = api.post(base, json={"command": "sleep 1004 & sleep 1004 & wait"}).json()

    def sleepers() -> int:
        return sh(api, env["id"], "ps -eo args").splitlines().count("sleep 1004")

    _until(lambda: sleepers() == 2, "the children")
    killed = api.delete(f"{base}/{proc['id']}")
    assert killed.status_code == 200 and killed.json()["status"] == "exited"
    assert "sleep 1004" not in sh(api, env["id"], "ps -eo args")
    delete(api, env["id"])


def test_terminal_over_websocket_runs_commands_and_resizes(
    api: httpx.Client, server: LiveServer
) -> None:
    env = running_env(api, name="proc-pty")
    ws_url = f"ws://127.0.0.1:{server.port}/v1/environments/{env['id']}/pty?cols=100&rows=30"
    headers = {"X-API-KEY": server.key}
    with connect(ws_url, additional_headers=headers) as socket:
        session = json.loads(socket.recv(timeout=30))
        assert session["type"] == "session" and session["offset"] == 0
        socket.send(b"stty size; echo tty=$(tty)\n")
        screen = b""
        while b"tty=/dev/pts" not in screen or b"30 100" not in screen:
            try:
                screen += socket.recv(timeout=30)  # type: ignore[operator]
            except TimeoutError:
                raise AssertionError(f"terminal showed only {screen!r}") from None
        socket.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
        socket.send(json.dumps({"type": "input", "data": "stty size; exit 7\n"}))
        frames = []
        while True:
            frame = socket.recv(timeout=30)
            frames.append(frame)
            if isinstance(frame, str):
                break
    output = b"".join(f for f in frames if isinstance(f, bytes))
    assert b"43 132" in output
    assert json.loads(frames[-1]) == {"type": "exit", "exit_code": 7}

    with pytest.raises(InvalidStatus):
        connect(ws_url)  # no key: refused before the upgrade
    delete(api, env["id"])


def test_a_terminal_outlives_its_socket_and_reattaches_with_what_it_wrote_meanwhile(
    api: httpx.Client, server: LiveServer
) -> None:
    env = running_env(api, name="proc-pty-again")
    base = f"ws://127.0.0.1:{server.port}/v1/environments/{env['id']}/pty"
    headers = {"X-API-KEY": server.key}
    with connect(base, additional_headers=headers) as socket:
        session = json.loads(socket.recv(timeout=30))
        # Written after the socket is gone: only a reattached terminal can show it.
        socket.send(b"sleep 1; echo written-while-away-$((6*7))\n")
    with connect(f"{base}?session={session['id']}", additional_headers=headers) as socket:
        again = json.loads(socket.recv(timeout=30))
        assert again["id"] == session["id"]
        screen = b""
        while b"written-while-away-42" not in screen:
            try:
                screen += socket.recv(timeout=30)  # type: ignore[operator]
            except TimeoutError:
                raise AssertionError(f"reattached terminal showed only {screen!r}") from None
        socket.send(b"exit 3\n")
        frames = []
        while not frames or not isinstance(frames[-1], str):
            frames.append(socket.recv(timeout=30))
    assert json.loads(frames[-1]) == {"type": "exit", "exit_code": 3}
    # It exited: a late attach gets its last words and the exit, then the close.
    with connect(f"{base}?session={session['id']}", additional_headers=headers) as socket:
        late = []
        while not late or not isinstance(late[-1], str) or "exit" not in late[-1]:
            late.append(socket.recv(timeout=30))
    assert json.loads(late[-1]) == {"type": "exit", "exit_code": 3}
    delete(api, env["id"])
