"""Daytona's PTY sessions through the unchanged SDK on real Docker: a terminal runs
what it is sent, outlives its connection (reconnecting shows what it wrote while
nobody was connected), resizes, is listed, and ends when killed."""

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
    PtySize,
    Sandbox,
)
from daytona.handle.pty_handle import PtyHandle

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


def read_until(handle: PtyHandle, text: str) -> str:
    """What the terminal writes until `text` appears in it."""
    seen = bytearray()

    def arrived() -> bool:
        handle.wait(on_data=seen.extend, timeout=0.3)
        return text.encode() in seen

    eventually(arrived, what=f"{text!r} on the terminal", timeout=30)
    return seen.decode(errors="replace")


def test_terminal_outlives_its_connection_resizes_and_is_killed(sandbox: Sandbox) -> None:
    process = sandbox.process
    pty = process.create_pty_session(
        "term", cwd="/tmp", envs={"PTY_VAR": "v1"}, pty_size=PtySize(rows=24, cols=80)
    )
    assert pty.is_connected() and pty.exit_code is None
    pty.send_input("echo hi-$PTY_VAR from $(pwd)\n")
    assert "hi-v1 from /tmp" in read_until(pty, "hi-v1 from /tmp")

    # Output made while nobody is connected is there on reconnecting, and only it.
    pty.send_input(
        "while [ ! -f /tmp/go ]; do sleep 0.1; done; echo later-$((6*7)); touch /tmp/done\n"
    )
    read_until(pty, "touch /tmp/done")  # the terminal's echo of the line: it was read
    pty.disconnect()
    assert process.exec("touch /tmp/go").exit_code == 0
    eventually(lambda: process.exec("test -f /tmp/done").exit_code == 0, what="the command")
    again = process.connect_pty_session("term")
    replay = read_until(again, "later-42")
    assert "hi-v1" not in replay

    info = again.resize(PtySize(rows=40, cols=120))
    assert (info.rows, info.cols) == (40, 120)
    again.send_input("stty size\n")
    assert "40 120" in read_until(again, "40 120")

    listed = {s.id: s for s in process.list_pty_sessions()}
    assert listed["term"].active and listed["term"].cwd == "/tmp"
    info = process.get_pty_session_info("term")
    assert (info.cols, info.rows, info.envs) == (120, 40, {"PTY_VAR": "v1"})

    again.kill()
    result = again.wait(timeout=20)
    assert result.exit_code is not None and not again.is_connected()
    with pytest.raises(DaytonaNotFoundError):
        process.get_pty_session_info("term")
    with pytest.raises(DaytonaError, match="404"):  # the upgrade refused: not found
        process.connect_pty_session("term")


def test_terminal_exit_code_reaches_the_client(sandbox: Sandbox) -> None:
    pty = sandbox.process.create_pty_session("leaving")
    info = sandbox.process.get_pty_session_info("leaving")
    assert info.active and info.cwd == "/workspace"
    pty.send_input("pwd\n")
    read_until(pty, "/workspace\r\n")  # started where its info says
    pty.send_input("exit 3\n")
    result = pty.wait(timeout=20)
    assert result.exit_code == 3

    def inactive() -> bool:
        return not sandbox.process.get_pty_session_info("leaving").active

    eventually(inactive, what="the terminal to show it ended")
    sandbox.process.kill_pty_session("leaving")


def test_async_client_drives_a_terminal(
    sandbox: Sandbox, async_config: Callable[[], DaytonaConfig]
) -> None:
    async def scenario() -> tuple[str, int | None]:
        async with AsyncDaytona(async_config()) as client:
            box = await client.get(sandbox.id)
            seen = bytearray()
            done = asyncio.Event()

            async def on_data(data: bytes) -> None:
                seen.extend(data)
                if b"async-84" in seen:
                    done.set()

            pty = await box.process.create_pty_session(
                "async-term", on_data=on_data, pty_size=PtySize(rows=30, cols=100)
            )
            await pty.send_input("echo async-$((42*2)); stty size\n")
            await asyncio.wait_for(done.wait(), 30)
            await pty.send_input("exit 5\n")
            result = await pty.wait()
            await box.process.kill_pty_session("async-term")
            return seen.decode(errors="replace"), result.exit_code

    text, code = asyncio.run(scenario())
    assert "async-84" in text and code == 5
