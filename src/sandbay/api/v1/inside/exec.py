"""/v1/environments/{env}/exec, …/processes, …/pty: commands inside an environment."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status
from fastapi.responses import Response

from sandbay.api.deps import EnvRef, InsideDep, PrincipalDep, close_code, connection_principal
from sandbay.api.sse import SSEResponse, sse
from sandbay.domain.errors import InvalidRequest, SandbayError
from sandbay.domain.exec import (
    ExecExitEvent,
    ExecOutputEvent,
    ExecRequest,
    ExecResult,
    Process,
    ProcessList,
    ProcessOutput,
    ProcessStart,
    SignalRequest,
    StdinWrite,
)
from sandbay.domain.limits import MAX_INT64
from sandbay.runtime.inside import ProcessHandle
from sandbay.services.inside import exec as exec_service
from sandbay.services.inside import process_sessions as procs
from sandbay.services.inside.exec import StreamEvent
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import touch

router = APIRouter(prefix="/v1/environments", tags=["exec"])

_ACTIVITY_EVERY_S = 30.0


def _sse_doc(description: str) -> dict[int | str, dict[str, Any]]:
    schema = {
        "oneOf": [
            {**ExecOutputEvent.model_json_schema(), "description": "`stdout` / `stderr`"},
            {**ExecExitEvent.model_json_schema(), "description": "`exit`, always last"},
            {
                "type": "object",
                "description": "`error`: the command could not start",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        ]
    }
    return {200: {"description": description, "content": {"text/event-stream": {"schema": schema}}}}


async def _encode(events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    async for item in events:
        yield sse(item.event, item.data)


@router.post("/{env}/exec")
async def exec_command(
    env: EnvRef, body: ExecRequest, principal: PrincipalDep, inside: InsideDep
) -> ExecResult:
    """Run a command to completion: 200 with its exit code, stdout and stderr, also for
    a non-zero exit. On `timeout` the command and every process it started are killed
    (`timed_out: true`). Each stream keeps at most `exec_output_limit_bytes` (default
    10 MiB); the rest is dropped and `stdout_truncated`/`stderr_truncated` say so:
    use `…/exec/stream` for large output. 409 unless the environment is running."""
    return await exec_service.run_command(inside, principal, env, body)


@router.post(
    "/{env}/exec/stream",
    response_class=Response,
    responses=_sse_doc("Server-sent events: `stdout`/`stderr` as produced, then `exit`."),
)
async def exec_stream(
    env: EnvRef, body: ExecRequest, principal: PrincipalDep, inside: InsideDep
) -> Response:
    """Run a command and stream its output as server-sent events: `event: stdout` /
    `event: stderr` with `{"data": "…"}` (UTF-8) as it is produced, then one
    `event: exit` with `{"exit_code", "timed_out", "duration_ms"}`. Nothing is
    buffered beyond a few chunks: a slow reader slows the command. Closing the
    connection kills the command and its children."""
    events = await exec_service.stream_command(inside, principal, env, body)
    return SSEResponse(_encode(events))


@router.post("/{env}/processes", status_code=status.HTTP_201_CREATED)
async def start_process(
    env: EnvRef, body: ProcessStart, principal: PrincipalDep, inside: InsideDep
) -> Process:
    """Start a background process (a session). It runs until it exits, is killed, or
    the environment stops; its output is kept (the last `process_output_limit_bytes`
    of each stream). With `stdin: true` its input stays open for `…/stdin`."""
    return await procs.start_process(inside, principal, env, body)


@router.get("/{env}/processes")
async def list_processes(env: EnvRef, principal: PrincipalDep, inside: InsideDep) -> ProcessList:
    """Background processes started through this server, running and recently exited."""
    return ProcessList(data=await procs.list_processes(inside, principal, env))


@router.get("/{env}/processes/{process_id}")
async def get_process(
    env: EnvRef, process_id: str, principal: PrincipalDep, inside: InsideDep
) -> Process:
    """Status, pid and exit code of one background process."""
    return await procs.get_process(inside, principal, env, process_id)


@router.get(
    "/{env}/processes/{process_id}/output",
    response_model=ProcessOutput,
    responses=_sse_doc("With `follow=true`: server-sent events as for `…/exec/stream`."),
)
async def process_output(
    env: EnvRef,
    process_id: str,
    principal: PrincipalDep,
    inside: InsideDep,
    stdout_offset: Annotated[
        int, Query(ge=0, le=MAX_INT64, description="Byte offset to read from")
    ] = 0,
    stderr_offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    follow: Annotated[bool, Query(description="Stream as server-sent events")] = False,
) -> Response | ProcessOutput:
    """Output retained so far from the given offsets (pass back `*_next_offset` to
    poll for more). With `follow=true`, the same as server-sent events, then new
    output as it is produced, then `exit`."""
    output = await procs.process_output(
        inside,
        principal,
        env,
        process_id,
        stdout_offset=stdout_offset,
        stderr_offset=stderr_offset,
        follow=follow,
    )
    if isinstance(output, ProcessOutput):
        return output
    return SSEResponse(_encode(output))


@router.post("/{env}/processes/{process_id}/stdin")
async def write_stdin(
    env: EnvRef, process_id: str, body: StdinWrite, principal: PrincipalDep, inside: InsideDep
) -> Process:
    """Write to the process's standard input; `eof: true` closes it afterwards.
    409 if it was started without `stdin: true` or its input is closed."""
    return await procs.write_stdin(inside, principal, env, process_id, body)


@router.post("/{env}/processes/{process_id}/signal")
async def signal_process(
    env: EnvRef,
    process_id: str,
    body: SignalRequest,
    principal: PrincipalDep,
    inside: InsideDep,
) -> Process:
    """Send a signal to the process and every process it started."""
    return await procs.signal_process(inside, principal, env, process_id, body.signal)


@router.delete("/{env}/processes/{process_id}")
async def kill_process(
    env: EnvRef, process_id: str, principal: PrincipalDep, inside: InsideDep
) -> Process:
    """Kill the process with its whole tree (SIGKILL) if it runs, and forget it."""
    return await procs.kill_process(inside, principal, env, process_id)


@router.get(
    "/{env}/pty",
    status_code=status.HTTP_426_UPGRADE_REQUIRED,
    responses={426: {"description": "Plain HTTP: connect with a WebSocket instead"}},
)
async def pty_help(env: EnvRef) -> Response:
    """**WebSocket** (`ws://…/v1/environments/{env}/pty?cols=80&rows=24`): an
    interactive terminal. Authenticate with `X-API-KEY` or `Authorization: Bearer`.
    Query: `cols`, `rows`, optional `command` (shell string; default a login shell),
    `cwd`, `user`. Client → server: binary frames are keystrokes; text frames are
    JSON: `{"type": "resize", "cols": 120, "rows": 40}` or `{"type": "input",
    "data": "ls\\n"}`. Server → client: first a text frame `{"type": "session",
    "id": "…", "offset": 0}`, then binary frames of terminal output, then a text
    frame `{"type": "exit", "exit_code": 0}` and close 1000. Refusals close with
    4000 + the HTTP status (4401, 4403, 4404, 4409) and the message as reason.
    The terminal outlives the socket: connect again with `session=<id>` (and
    `offset=<bytes of output already seen>`) to reattach and get what it wrote
    meanwhile; it ends when its shell exits or the environment stops."""
    body = {"error": {"type": "invalid_request_error", "message": "connect with a WebSocket"}}
    return Response(json.dumps(body), status_code=426, media_type="application/json")


async def _pump_output(socket: WebSocket, handle: ProcessHandle) -> None:
    async for chunk in handle.output():
        await socket.send_bytes(chunk.data)


async def _control(handle: ProcessHandle, text: str) -> None:
    """A JSON control message; malformed ones are ignored, not fatal to the terminal."""
    try:
        control = json.loads(text)
        if control.get("type") == "resize":
            await handle.resize(int(control["cols"]), int(control["rows"]))
        elif control.get("type") == "input":
            await handle.write(str(control.get("data", "")).encode())
    except (ValueError, KeyError, TypeError, AttributeError):
        return


async def _pump_input(
    socket: WebSocket, handle: ProcessHandle, inside: InsideService, env_id: str
) -> None:
    touched = asyncio.get_running_loop().time()
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes"):
            await handle.write(message["bytes"])
        elif message.get("text"):
            await _control(handle, message["text"])
        now = asyncio.get_running_loop().time()
        if now - touched > _ACTIVITY_EVERY_S:  # typing keeps the environment awake
            touched = now
            await touch(inside.sessions, env_id)


@router.websocket("/{env}/pty")
async def pty(
    socket: WebSocket,
    env: str,
    inside: InsideDep,
    cols: Annotated[int, Query(ge=1, le=1000)] = 80,
    rows: Annotated[int, Query(ge=1, le=1000)] = 24,
    command: str | None = None,
    cwd: str | None = None,
    user: str | None = None,
    session: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> None:
    try:
        principal = await connection_principal(socket)
        if cwd is not None and not cwd.startswith("/"):
            raise InvalidRequest("cwd must be an absolute path")
        env_id, handle = await procs.open_terminal(
            inside,
            principal,
            env,
            command=command,
            cwd=cwd,
            user=user,
            session=session,
            offset=offset,
        )
    except SandbayError as exc:
        await socket.close(code=close_code(exc), reason=exc.message[:120])
        return
    await socket.accept()
    with inside.holds.hold(env_id):  # an open terminal is activity
        await _serve_terminal(socket, handle, inside, env_id, cols, rows)


async def _serve_terminal(
    socket: WebSocket,
    handle: ProcessHandle,
    inside: InsideService,
    env_id: str,
    cols: int,
    rows: int,
) -> None:
    try:
        await handle.started()
        if handle.process_id is not None:  # what a client reattaches with
            session = {"type": "session", "id": handle.process_id, "offset": handle.offset}
            await socket.send_text(json.dumps(session))
        await handle.resize(cols, rows)
        reader = asyncio.create_task(_pump_output(socket, handle))
        writer = asyncio.create_task(_pump_input(socket, handle, inside, env_id))
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:  # the terminal ended: report how, then close
            writer.cancel()
            code = await handle.wait()
            await socket.send_text(json.dumps({"type": "exit", "exit_code": code}))
            await socket.close(code=1000)
        else:  # the client left: the terminal waits to be reattached
            reader.cancel()
    except SandbayError as exc:  # it could not start (unknown user, bad cwd…)
        with contextlib.suppress(Exception):
            await socket.close(code=close_code(exc), reason=exc.message[:120])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await handle.close()
