"""Use cases of background processes and interactive terminals. Starting, writing to
and signalling need the environment running; reading what the server holds (the
list, the output, the exit code) works in any state."""

import codecs
from collections.abc import AsyncIterator

from sandbay.domain.exec import (
    ExecExitEvent,
    ExecOutputEvent,
    Process,
    ProcessOutput,
    ProcessSpec,
    ProcessStart,
    ProcessStatus,
    StdinWrite,
    command_argv,
)
from sandbay.domain.keys import Permission, Principal
from sandbay.runtime.inside import ProcessHandle
from sandbay.services.inside.exec import StreamEvent
from sandbay.services.inside.processes import ProcessEntry
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import RUNNING_ONLY, open_target

EXEC = Permission.ENVIRONMENTS_EXEC
#: Runs the richest shell the image has, as a login shell.
DEFAULT_SHELL = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash -l || exec sh -l"]


async def start_process(
    inside: InsideService, principal: Principal, id_or_name: str, body: ProcessStart
) -> Process:
    target = await open_target(inside.sessions, principal, id_or_name, EXEC)
    entry = await inside.processes.start(
        target.environment_id,
        body,
        user=body.user or target.user,
        env=target.env,
        unset=target.unset,
    )
    return entry.view()


async def list_processes(
    inside: InsideService, principal: Principal, id_or_name: str
) -> list[Process]:
    target = await open_target(inside.sessions, principal, id_or_name, EXEC, allowed=None)
    return [e.view() for e in inside.processes.list(target.environment_id)]


async def _entry(
    inside: InsideService, principal: Principal, id_or_name: str, process_id: str, *, running: bool
) -> ProcessEntry:
    allowed = RUNNING_ONLY if running else None
    target = await open_target(inside.sessions, principal, id_or_name, EXEC, allowed=allowed)
    return inside.processes.get(target.environment_id, process_id)


async def get_process(
    inside: InsideService, principal: Principal, id_or_name: str, process_id: str
) -> Process:
    return (await _entry(inside, principal, id_or_name, process_id, running=False)).view()


async def process_output(
    inside: InsideService,
    principal: Principal,
    id_or_name: str,
    process_id: str,
    *,
    stdout_offset: int,
    stderr_offset: int,
    follow: bool = False,
) -> ProcessOutput | AsyncIterator[StreamEvent]:
    """The output retained from the offsets on; with `follow`, the same as events,
    then new output as it comes, then `exit`."""
    entry = await _entry(inside, principal, id_or_name, process_id, running=False)
    if follow:
        return _follow(entry, stdout_offset, stderr_offset)
    return entry.output(stdout_offset, stderr_offset)


async def _follow(entry: ProcessEntry, out_at: int, err_at: int) -> AsyncIterator[StreamEvent]:
    """What is retained from the offsets on, then output as it comes, then `exit`."""
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}
    offsets = {"stdout": out_at, "stderr": err_at}
    while True:
        ended = not entry.running  # read before the buffers: nothing comes after the end
        for stream, buffer in (("stdout", entry.stdout), ("stderr", entry.stderr)):
            data, _ = buffer.read(offsets[stream])
            offsets[stream] = buffer.end
            if text := decoders[stream].decode(data, final=ended):
                yield StreamEvent(stream, ExecOutputEvent(data=text))
        if ended:
            duration = (entry.ended_at or entry.started_at) - entry.started_at
            yield StreamEvent(
                "exit",
                ExecExitEvent(
                    exit_code=entry.exit_code,
                    timed_out=False,
                    duration_ms=int(duration.total_seconds() * 1000),
                ),
            )
            return
        await entry.changed(timeout=5.0)


async def write_stdin(
    inside: InsideService, principal: Principal, id_or_name: str, process_id: str, body: StdinWrite
) -> Process:
    entry = await _entry(inside, principal, id_or_name, process_id, running=True)
    await inside.processes.write(entry, body.data.encode(), eof=body.eof)
    return entry.view()


async def signal_process(
    inside: InsideService, principal: Principal, id_or_name: str, process_id: str, signal: str
) -> Process:
    entry = await _entry(inside, principal, id_or_name, process_id, running=True)
    await inside.processes.signal(entry, signal)
    return entry.view()


async def kill_process(
    inside: InsideService, principal: Principal, id_or_name: str, process_id: str
) -> Process:
    """Kill it with its whole tree (if it runs) and forget it; answers its last state."""
    entry = await _entry(inside, principal, id_or_name, process_id, running=False)
    await inside.processes.remove(entry)
    view = entry.view()
    return view.model_copy(update={"status": ProcessStatus.EXITED})


async def open_terminal(
    inside: InsideService,
    principal: Principal,
    id_or_name: str,
    *,
    command: str | None,
    cwd: str | None,
    user: str | None,
    session: str | None = None,
    offset: int = 0,
    env: dict[str, str] | None = None,
) -> tuple[str, ProcessHandle]:
    """An interactive process on a TTY (the caller pumps it over a WebSocket). It
    outlives the connection: `session` (its id) reattaches to it, replaying what it
    wrote from byte `offset` (as far back as is kept)."""
    target = await open_target(inside.sessions, principal, id_or_name, EXEC)
    if session is not None:
        return target.environment_id, await inside.runner.attach(
            target.environment_id, session, offset=offset
        )
    spec = ProcessSpec(
        argv=command_argv(command) if command else DEFAULT_SHELL,
        env={**target.env, **(env or {}), "TERM": "xterm-256color"},
        unset=target.unset,
        cwd=cwd,
        user=user or target.user,
        tty=True,
        stdin=True,
        keep=True,
    )
    return target.environment_id, await inside.runner.spawn(target.environment_id, spec)
