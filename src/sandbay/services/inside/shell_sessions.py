"""Use cases of process sessions and named terminals (Daytona's, over the agent).

A process session is one long-lived shell started through the agent, reading
commands on its standard input: commands run in it one after another and share its
state (`cd`, `export`, functions). Each command is written to it wrapped so that the
shell prints a marker before and after it on both of its streams (the exit code in
the closing one): the command's stdout and stderr stay apart, arrive as produced,
and its end is known the moment it comes, with no polling. Each command reads its
input from a FIFO of its own, so input sent to one command can never be read by the
shell as the next command (as it could if commands shared the shell's stdin).

A named terminal is the native terminal (`open_terminal`): a kept TTY process that
outlives its connections; this server follows it to know whether it still runs, and
remembers how much of its output clients got, so a client that reconnects gets what
it wrote meanwhile."""

import asyncio
import contextlib
import shlex
import uuid
from collections.abc import AsyncIterator

from sandbay.domain.errors import Conflict, Gone, InvalidRequest, NotFound, WaitTimeout
from sandbay.domain.exec import MAX_STDIN_CHARS, ExecRequest, ProcessSpec, Stream
from sandbay.domain.keys import Permission, Principal
from sandbay.runtime.inside import ProcessHandle
from sandbay.services.environments.records import get_environment
from sandbay.services.inside.exec import run_command
from sandbay.services.inside.logs import LogStream, open_logs
from sandbay.services.inside.process_sessions import open_terminal
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.shell_registry import (
    SESSION_SHELL,
    SessionCommand,
    ShellSession,
    Terminal,
)
from sandbay.services.inside.target import Target, open_target

EXEC = Permission.ENVIRONMENTS_EXEC
#: The entrypoint session's name and its one command's id (the workload).
ENTRYPOINT = "entrypoint"
#: Writes stdin to a running command's FIFO; fails once the command has ended.
_FEED = '[ -p "$1" ] && exec cat >"$1"'
_INPUT_TIMEOUT_S = 10.0
#: Where commands' FIFOs go inside the environment (named by the session's random token).
_FIFOS = "/tmp/.sandbay-"  # noqa: S108 (a path inside the environment, not here)


async def _session(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> tuple[Target, ShellSession]:
    target = await open_target(inside.sessions, principal, sandbox, EXEC)
    return target, inside.shells.session(target.environment_id, name)


async def create_session(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> ShellSession:
    """Start the session's shell (409 if the name is taken in this environment)."""
    if name == ENTRYPOINT:
        raise Conflict("session 'entrypoint' is the sandbox's own")
    target = await open_target(inside.sessions, principal, sandbox, EXEC)
    known = inside.shells.sessions.get(target.environment_id, {}).get(name)
    if known is not None and known.alive:  # one whose shell ended (a stop) is replaced
        raise Conflict(f"session {name!r} already exists")
    spec = ProcessSpec(
        argv=SESSION_SHELL, env=target.env, unset=target.unset, user=target.user, stdin=True
    )
    handle = await inside.runner.spawn(target.environment_id, spec)
    if await handle.started() is None:
        await handle.wait()  # says why it could not start
        raise InvalidRequest("the session's shell could not start")
    session = ShellSession(name, target.environment_id, target.user, handle)
    try:
        inside.shells.add_session(session)
    except Conflict:
        await handle.kill()
        raise
    return session


async def list_sessions(
    inside: InsideService, principal: Principal, sandbox: str
) -> list[ShellSession]:
    target = await open_target(inside.sessions, principal, sandbox, EXEC)
    return list(inside.shells.sessions.get(target.environment_id, {}).values())


async def get_session(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> ShellSession:
    return (await _session(inside, principal, sandbox, name))[1]


async def delete_session(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> None:
    """Kill the shell with everything it started (background jobs too) and forget it."""
    target, session = await _session(inside, principal, sandbox, name)
    inside.shells.drop_session(session)
    if session.alive:
        await session.handle.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.ended.wait(), 10)
    leftovers = f"rm -f {_FIFOS}{session.token}-*"
    cleanup = ExecRequest(command=["/bin/sh", "-c", leftovers], timeout=10, user=session.user)
    with contextlib.suppress(Exception):
        await run_command(inside, principal, target.environment_id, cleanup)


async def execute(
    inside: InsideService,
    principal: Principal,
    sandbox: str,
    name: str,
    command: str,
    *,
    run_async: bool,
    echo_input: bool = True,
) -> SessionCommand:
    """Queue `command` in the session's shell; unless `run_async`, wait for its end
    (at most the server's exec timeout: 408, the command goes on)."""
    text = command.strip()
    if not text:
        raise InvalidRequest("command cannot be empty")
    target, session = await _session(inside, principal, sandbox, name)
    if not session.alive:
        raise InvalidRequest("the session's shell has exited")
    cmd_id = str(uuid.uuid4())
    entry = SessionCommand(
        id=cmd_id,
        command=text,
        echo_input=echo_input,
        fifo=f"{_FIFOS}{session.token}-{cmd_id}.in",
    )
    entry.hold = inside.holds.hold(target.environment_id)  # a running command is activity
    entry.hold.__enter__()
    session.commands[cmd_id] = entry
    session.forget_old()
    try:
        async with session.lock:
            await session.handle.write(session.script(entry))
    except Exception:
        entry.finish(1)
        raise
    if not run_async:
        try:
            await asyncio.wait_for(entry.done.wait(), inside.limits.default_timeout)
        except TimeoutError:
            raise WaitTimeout(f"command {cmd_id} is still running") from None
    return entry


async def get_command(
    inside: InsideService, principal: Principal, sandbox: str, name: str, command_id: str
) -> tuple[ShellSession, SessionCommand]:
    _, session = await _session(inside, principal, sandbox, name)
    command = session.commands.get(command_id)
    if command is None:
        raise NotFound("command not found")
    return session, command


async def follow_command(
    session: ShellSession, command: SessionCommand
) -> AsyncIterator[tuple[Stream, bytes]]:
    """The command's output so far, then as it comes, until it ends."""
    index = command.output.base
    while True:
        ended = not command.running  # read before the output: nothing comes after
        pieces = command.output.since(index)
        index = command.output.end
        for piece in pieces:
            yield piece
        if ended:
            return
        await session.changes.wait(5.0)


async def send_input(
    inside: InsideService,
    principal: Principal,
    sandbox: str,
    name: str,
    command_id: str,
    data: str,
) -> None:
    """Write to a running command's input (a newline is added if missing, as for
    `read`); shown in its stdout unless it was started with echo suppressed."""
    session, command = await get_command(inside, principal, sandbox, name, command_id)
    try:  # a command queued behind another has no input yet
        await asyncio.wait_for(command.started.wait(), _INPUT_TIMEOUT_S)
    except TimeoutError:
        raise Conflict("the command has not started yet: an earlier one still runs") from None
    if not command.running:
        raise _ended(command)
    if not data.endswith("\n"):
        data += "\n"
    if len(data) > MAX_STDIN_CHARS:
        raise InvalidRequest(f"input is limited to {MAX_STDIN_CHARS} characters at a time")
    feed = ExecRequest(
        command=["/bin/sh", "-c", _FEED, "sh", command.fifo],
        stdin=data,
        timeout=_INPUT_TIMEOUT_S,
        user=session.user,
    )
    echo = None
    if command.echo_input:  # shown before what the command answers to it
        echo = command.output.add("stdout", data.encode())
        session.changes.notify()
    result = await run_command(inside, principal, session.environment_id, feed)
    if result.exit_code != 0:
        if echo is not None:
            command.output.retract(echo)
        with contextlib.suppress(TimeoutError):  # its FIFO went with its end: let it land
            await asyncio.wait_for(command.done.wait(), 1.0)
        if not command.running:
            raise _ended(command)
        raise Conflict("the command has not started yet or no longer reads input")


def _ended(command: SessionCommand) -> Gone:
    """Input for a command that has ended: 410, as Daytona's daemon answers it."""
    return Gone(f"command has already completed with exit code {command.exit_code}")


async def entrypoint_command(inside: InsideService, principal: Principal, sandbox: str) -> str:
    """The sandbox's own workload command as text ("" when it has none)."""
    async with inside.sessions() as db:
        env = await get_environment(db, principal, sandbox, EXEC)
        command = env.command
    if command is None:
        return ""
    return command if isinstance(command, str) else shlex.join(command)


async def entrypoint_logs(
    inside: InsideService, principal: Principal, sandbox: str, stream: LogStream
) -> str:
    """The workload's whole output on `stream` (both: interleaved as the engine keeps it)."""
    chunks = await open_logs(
        inside,
        principal,
        sandbox,
        follow=False,
        since=None,
        tail=None,
        timestamps=False,
        stream=stream,
    )
    return b"".join([chunk async for chunk in chunks]).decode(errors="replace")


async def follow_entrypoint(
    inside: InsideService, principal: Principal, sandbox: str
) -> AsyncIterator[tuple[Stream, bytes]]:
    """The workload's output, labelled by stream, until it stops or the caller goes."""
    streams: list[Stream] = ["stdout", "stderr"]
    sources = [
        await open_logs(
            inside,
            principal,
            sandbox,
            follow=True,
            since=None,
            tail=None,
            timestamps=False,
            stream=name,
        )
        for name in streams
    ]
    return _merge(dict(zip(streams, sources, strict=True)))


async def _merge(
    sources: dict[Stream, AsyncIterator[bytes]],
) -> AsyncIterator[tuple[Stream, bytes]]:
    queue: asyncio.Queue[tuple[Stream, bytes] | None] = asyncio.Queue(maxsize=64)

    async def pump(stream: Stream, source: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in source:
                await queue.put((stream, chunk))
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(s, src)) for s, src in sources.items()]
    try:
        left = len(tasks)
        while left:
            item = await queue.get()
            if item is None:
                left -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()


async def create_terminal(
    inside: InsideService,
    principal: Principal,
    sandbox: str,
    name: str,
    *,
    cwd: str | None,
    envs: dict[str, str],
    cols: int,
    rows: int,
    lazy: bool = False,
) -> Terminal:
    """A named terminal running the sandbox's login shell; `lazy` starts it at the
    first connection."""
    target = await open_target(inside.sessions, principal, sandbox, EXEC)
    terminal = Terminal(name, target.environment_id, cwd, envs, cols, rows, lazy)
    inside.shells.add_terminal(terminal)
    if not lazy:
        try:
            await _start_terminal(inside, principal, terminal)
        except Exception:
            inside.shells.drop_terminal(terminal)
            raise
    return terminal


async def _start_terminal(inside: InsideService, principal: Principal, terminal: Terminal) -> None:
    _, handle = await open_terminal(
        inside,
        principal,
        terminal.environment_id,
        command=None,
        cwd=terminal.cwd,
        user=None,
        env=terminal.envs,
    )
    if await handle.started() is None:
        await handle.wait()  # says why it could not start
        raise InvalidRequest("the terminal could not start")
    await handle.resize(terminal.cols, terminal.rows)
    terminal.monitor, terminal.process_id = handle, handle.process_id
    inside.shells.run(terminal.follow(), f"terminal {terminal.name}")


async def list_terminals(
    inside: InsideService, principal: Principal, sandbox: str
) -> list[Terminal]:
    target = await open_target(inside.sessions, principal, sandbox, EXEC)
    return list(inside.shells.terminals.get(target.environment_id, {}).values())


async def get_terminal(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> Terminal:
    target = await open_target(inside.sessions, principal, sandbox, EXEC)
    return inside.shells.terminal(target.environment_id, name)


async def connect_terminal(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> tuple[Terminal, ProcessHandle]:
    """Attach to the terminal, replaying what it wrote since clients last read."""
    terminal = await get_terminal(inside, principal, sandbox, name)
    if terminal.monitor is None:
        await _start_terminal(inside, principal, terminal)
    if terminal.process_id is None:
        raise NotFound(f"PTY session {name} not found")
    _, handle = await open_terminal(
        inside,
        principal,
        terminal.environment_id,
        command=None,
        cwd=None,
        user=None,
        session=terminal.process_id,
        offset=terminal.delivered,
    )
    return terminal, handle


async def resize_terminal(
    inside: InsideService, principal: Principal, sandbox: str, name: str, cols: int, rows: int
) -> Terminal:
    terminal = await get_terminal(inside, principal, sandbox, name)
    if terminal.monitor is not None:
        if not terminal.active:
            raise InvalidRequest(f"PTY session {name} has exited")
        await terminal.monitor.resize(cols, rows)
    terminal.cols, terminal.rows = cols, rows
    return terminal


async def kill_terminal(
    inside: InsideService, principal: Principal, sandbox: str, name: str
) -> None:
    """Kill the terminal's shell with everything it started, and forget it."""
    terminal = await get_terminal(inside, principal, sandbox, name)
    inside.shells.drop_terminal(terminal)
    if terminal.active and terminal.monitor is not None:
        await terminal.monitor.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(terminal.ended.wait(), 10)
