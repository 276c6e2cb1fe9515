"""Daytona's process sessions through the unchanged SDK, sync and async, on real
Docker: a session is one shell whose commands share its state, each command's
stdout and stderr apart, followed logs, input to a running command, and deleting a
session ends what it started."""

import asyncio
from collections.abc import Callable, Iterator

import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    Sandbox,
    SessionExecuteRequest,
)

from sandbay.services.inside.shell_registry import Mark, MarkerReader, Piece
from tests.support.polling import eventually
from tests.support.server import LiveServer

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]


@pytest.fixture(scope="module")
def sandbox(server: LiveServer) -> Iterator[Sandbox]:
    client = Daytona(DaytonaConfig(api_key=server.key, api_url=server.url))
    box = client.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    yield box
    client.delete(box, wait=True)  # gone before the server's own cleanup


def test_commands_share_the_sessions_shell_state(sandbox: Sandbox) -> None:
    process = sandbox.process
    process.create_session("state")
    first = process.execute_session_command(
        "state", SessionExecuteRequest(command="cd /tmp && export GREETING=hello")
    )
    assert first.exit_code == 0
    second = process.execute_session_command(
        "state",
        SessionExecuteRequest(command='echo "$GREETING from $(pwd)"; echo oops >&2'),
    )
    assert (second.stdout, second.stderr) == ("hello from /tmp\n", "oops\n")
    # Both streams together in arrival order (two pipes: which comes first may vary).
    assert sorted(second.output.splitlines()) == ["hello from /tmp", "oops"]
    failing = process.execute_session_command("state", SessionExecuteRequest(command="false"))
    assert failing.exit_code == 1
    broken = process.execute_session_command("state", SessionExecuteRequest(command="if then"))
    assert broken.exit_code == 2 and broken.stderr  # the shell survives a syntax error
    assert (
        process.execute_session_command(
            "state", SessionExecuteRequest(command="echo $GREETING")
        ).stdout
        == "hello\n"
    )

    session = process.get_session("state")
    assert session.session_id == "state"
    assert [c.command for c in session.commands][:2] == [
        "cd /tmp && export GREETING=hello",
        'echo "$GREETING from $(pwd)"; echo oops >&2',
    ]
    assert [c.exit_code for c in session.commands] == [0, 0, 1, 2, 0]
    command = process.get_session_command("state", first.cmd_id)
    assert (command.id, command.exit_code) == (first.cmd_id, 0)
    logs = process.get_session_command_logs("state", second.cmd_id)
    assert (logs.stdout, logs.stderr) == ("hello from /tmp\n", "oops\n")
    assert "state" in {s.session_id for s in process.list_sessions()}

    with pytest.raises(DaytonaError) as conflict:
        process.create_session("state")
    assert conflict.value.status_code == 409
    with pytest.raises(DaytonaNotFoundError):
        process.get_session_command("state", "no-such-command")
    with pytest.raises(DaytonaNotFoundError):
        process.execute_session_command("nope", SessionExecuteRequest(command="true"))
    process.delete_session("state")
    with pytest.raises(DaytonaNotFoundError):
        process.get_session("state")


def test_async_command_streams_stdout_and_stderr_apart_then_ends(sandbox: Sandbox) -> None:
    process = sandbox.process
    process.create_session("stream")
    started = process.execute_session_command(
        "stream",
        SessionExecuteRequest(
            command="for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done; exit 4",
            run_async=True,
        ),
    )
    assert started.exit_code is None
    assert process.get_session_command("stream", started.cmd_id).exit_code is None
    out: list[str] = []
    err: list[str] = []
    asyncio.run(
        process.get_session_command_logs_async("stream", started.cmd_id, out.append, err.append)
    )
    assert "".join(out) == "out1\nout2\nout3\n"
    assert "".join(err) == "err1\nerr2\nerr3\n"
    assert process.get_session_command("stream", started.cmd_id).exit_code == 4
    process.delete_session("stream")


def test_input_reaches_a_command_reading_stdin(sandbox: Sandbox) -> None:
    process = sandbox.process
    process.create_session("input")
    asked = process.execute_session_command(
        "input",
        SessionExecuteRequest(command='read name; echo "hello $name"', run_async=True),
    )
    # The command reads its own input: a command queued behind it is not read as input.
    queued = process.execute_session_command(
        "input", SessionExecuteRequest(command="echo next", run_async=True)
    )
    process.send_session_command_input("input", asked.cmd_id, "world")

    def finished() -> bool:
        return process.get_session_command("input", queued.cmd_id).exit_code == 0

    eventually(finished, what="both commands to end")
    assert process.get_session_command("input", asked.cmd_id).exit_code == 0
    assert process.get_session_command_logs("input", queued.cmd_id).stdout == "next\n"
    logs = process.get_session_command_logs("input", asked.cmd_id)
    assert logs.stdout == "world\nhello world\n"  # the input is echoed, as the daemon does
    with pytest.raises(DaytonaError):  # it has ended: nothing reads input any more
        process.send_session_command_input("input", asked.cmd_id, "late")
    process.delete_session("input")


def test_deleting_a_session_ends_what_it_started(sandbox: Sandbox) -> None:
    process = sandbox.process
    process.create_session("doomed")
    process.execute_session_command(
        "doomed", SessionExecuteRequest(command="sleep 600 & echo $! > /tmp/doomed.pid")
    )
    sleeper = process.execute_session_command(
        "doomed", SessionExecuteRequest(command="sleep 600", run_async=True)
    )
    assert process.get_session_command("doomed", sleeper.cmd_id).exit_code is None
    assert sandbox.process.exec("kill -0 $(cat /tmp/doomed.pid)").exit_code == 0
    process.delete_session("doomed")
    assert "doomed" not in {s.session_id for s in process.list_sessions()}

    def gone() -> bool:
        return sandbox.process.exec("kill -0 $(cat /tmp/doomed.pid)").exit_code != 0

    eventually(gone, what="the session's background job to end")


def test_entrypoint_session_is_the_workload(sandbox: Sandbox) -> None:
    session = sandbox.process.get_entrypoint_session()
    assert session.session_id == "entrypoint" and len(session.commands) == 1
    logs = sandbox.process.get_entrypoint_logs()
    assert logs.stdout is not None and logs.stderr is not None


def test_async_client_runs_session_commands(
    sandbox: Sandbox, async_config: Callable[[], DaytonaConfig]
) -> None:
    async def scenario() -> tuple[str, str, int | None]:
        async with AsyncDaytona(async_config()) as client:
            box = await client.get(sandbox.id)
            await box.process.create_session("async")
            await box.process.execute_session_command(
                "async", SessionExecuteRequest(command="export N=41")
            )
            run = await box.process.execute_session_command(
                "async",
                SessionExecuteRequest(command="echo $((N + 1)); echo e >&2", run_async=True),
            )
            out: list[str] = []
            err: list[str] = []
            await box.process.get_session_command_logs_async(
                "async", run.cmd_id, out.append, err.append
            )
            command = await box.process.get_session_command("async", run.cmd_id)
            await box.process.delete_session("async")
            return "".join(out), "".join(err), command.exit_code

    assert asyncio.run(scenario()) == ("42\n", "e\n", 0)


def test_sessions_need_a_running_sandbox_and_a_restart_starts_them_afresh(
    daytona: Daytona,
) -> None:
    box = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    box.process.create_session("survivor")
    box.process.execute_session_command("survivor", SessionExecuteRequest(command="export X=1"))
    box.stop(timeout=60)
    with pytest.raises(DaytonaError) as refused:
        box.process.list_sessions()
    assert refused.value.status_code == 409
    box.start(timeout=60)
    # Its shell ended with the sandbox: the name can be used again, for a new shell.
    box.process.create_session("survivor")
    fresh = box.process.execute_session_command(
        "survivor", SessionExecuteRequest(command='echo "[$X]"')
    )
    assert fresh.stdout == "[]\n"
    daytona.delete(box, wait=True)


def test_a_stopped_sandbox_loses_its_sessions_and_terminals(daytona: Daytona) -> None:
    box = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    box.process.create_session("held")
    box.process.execute_session_command(
        "held", SessionExecuteRequest(command="sleep 600", run_async=True)
    )
    box.process.create_pty_session("tty").disconnect()
    assert [s.session_id for s in box.process.list_sessions()] == ["held"]
    assert [t.id for t in box.process.list_pty_sessions()] == ["tty"]
    box.stop(timeout=60)
    box.start(timeout=60)
    # Dropped when it stopped (as its interpreter contexts are), not kept as ended.
    assert box.process.list_sessions() == []
    assert box.process.list_pty_sessions() == []
    with pytest.raises(DaytonaNotFoundError):
        box.process.get_session("held")
    daytona.delete(box, wait=True)


def test_input_to_a_finished_command_is_gone(sandbox: Sandbox) -> None:
    process = sandbox.process
    process.create_session("finished")
    done = process.execute_session_command("finished", SessionExecuteRequest(command="true"))
    assert done.exit_code == 0 and done.cmd_id
    with pytest.raises(DaytonaError) as refused:
        process.send_session_command_input("finished", done.cmd_id, "late")
    assert refused.value.status_code == 410
    assert "already completed with exit code 0" in str(refused.value)
    process.delete_session("finished")


def test_markers_split_across_chunks_still_delimit_commands() -> None:
    reader = MarkerReader("tok")
    stream = b"stray\x1etok:s:c1\x1eout\x1e not ours\x1etok:e:c1:3\x1eafter\x1etok:s:c2\x1ex"
    items = [item for byte in stream for item in reader.feed(bytes([byte]))]
    text = b"".join(i.data for i in items if isinstance(i, Piece) and i.command_id == "c1")
    assert text == b"out\x1e not ours"
    assert [i for i in items if isinstance(i, Mark)] == [Mark("c1"), Mark("c1", 3), Mark("c2")]
    assert [i for i in items if isinstance(i, Piece) and i.command_id == "c2"] == [
        Piece("c2", b"x")
    ]
