"""Daytona's process sessions (toolbox `/process/session…`): long-lived shells whose
commands run in order and share its state, each command with an id, its exit code
(null while it runs) and its stdout and stderr apart; followed logs over a WebSocket
as the daemon sends them (each chunk behind a 3-byte stream marker, a normal close
at the end). The entrypoint session is the sandbox's own workload and its logs."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, WebSocket, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.websockets import WebSocketDisconnect

from sandbay.api.deps import InsideDep, connection_principal
from sandbay.domain.errors import PermissionDenied, SandbayError
from sandbay.domain.exec import Stream
from sandbay.domain.keys import Principal
from sandbay.services.inside import shell_sessions as shells
from sandbay.services.inside.shell_registry import SessionCommand, ShellSession

from .errors import DaytonaPrincipal, render_error

router = APIRouter(prefix="/toolbox/{sandboxId}/process/session", tags=["daytona-toolbox"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID or name of the sandbox")]
SessionId = Annotated[str, Path(alias="sessionId", min_length=1, max_length=256)]
CommandId = Annotated[str, Path(alias="commandId", min_length=1, max_length=64)]
#: The daemon's stream markers in followed logs.
MARKERS: dict[Stream, bytes] = {"stdout": b"\x01\x01\x01", "stderr": b"\x02\x02\x02"}


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CreateSessionBody(_Camel):
    session_id: str = Field(min_length=1, max_length=256)


class SessionExecuteBody(_Camel):
    command: str = Field(max_length=1024 * 1024)
    run_async: bool | None = None
    var_async: bool | None = Field(None, alias="async", description="Deprecated: runAsync")
    suppress_input_echo: bool | None = None


class SendInputBody(BaseModel):
    data: str


class DaytonaCommand(_Camel):
    id: str
    command: str
    exit_code: int | None = None

    @classmethod
    def of(cls, command: SessionCommand) -> "DaytonaCommand":
        return cls(id=command.id, command=command.command, exit_code=command.exit_code)


class DaytonaSession(_Camel):
    session_id: str
    commands: list[DaytonaCommand]

    @classmethod
    def of(cls, session: ShellSession) -> "DaytonaSession":
        commands = [DaytonaCommand.of(c) for c in session.commands.values()]
        return cls(session_id=session.name, commands=commands)


class DaytonaExecuteResult(_Camel):
    cmd_id: str
    output: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None


class DaytonaLogs(BaseModel):
    output: str
    stdout: str
    stderr: str


def _camel(model: BaseModel, code: int = status.HTTP_200_OK) -> JSONResponse:
    return JSONResponse(model.model_dump(by_alias=True, exclude_none=True), status_code=code)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(
    sandbox: SandboxId, body: CreateSessionBody, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Start a session: a shell that runs the commands sent to it, in order."""
    await shells.create_session(inside, principal, sandbox, body.session_id)


@router.get("")
async def list_sessions(
    sandbox: SandboxId, principal: DaytonaPrincipal, inside: InsideDep
) -> list[DaytonaSession]:
    """The sandbox's sessions with their commands."""
    found = await shells.list_sessions(inside, principal, sandbox)
    return [DaytonaSession.of(s) for s in found]


@router.get("/entrypoint")
async def entrypoint_session(
    sandbox: SandboxId, principal: DaytonaPrincipal, inside: InsideDep
) -> DaytonaSession:
    """The sandbox's own workload as a session of one command (its exit code is not
    known here: null)."""
    command = await shells.entrypoint_command(inside, principal, sandbox)
    entry = DaytonaCommand(id=shells.ENTRYPOINT, command=command)
    return DaytonaSession(session_id=shells.ENTRYPOINT, commands=[entry])


@router.get("/entrypoint/logs")
async def entrypoint_logs(
    sandbox: SandboxId, principal: DaytonaPrincipal, inside: InsideDep
) -> DaytonaLogs:
    """The workload's output so far (what its container logged)."""
    return DaytonaLogs(
        output=await shells.entrypoint_logs(inside, principal, sandbox, "both"),
        stdout=await shells.entrypoint_logs(inside, principal, sandbox, "stdout"),
        stderr=await shells.entrypoint_logs(inside, principal, sandbox, "stderr"),
    )


@router.get("/{sessionId}")
async def get_session(
    sandbox: SandboxId, session_id: SessionId, principal: DaytonaPrincipal, inside: InsideDep
) -> DaytonaSession:
    """One session with its commands."""
    return DaytonaSession.of(await shells.get_session(inside, principal, sandbox, session_id))


@router.delete("/{sessionId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    sandbox: SandboxId, session_id: SessionId, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """End the session's shell and every process it started."""
    await shells.delete_session(inside, principal, sandbox, session_id)


@router.post(
    "/{sessionId}/exec",
    response_model=DaytonaExecuteResult,
    responses={202: {"model": DaytonaExecuteResult, "description": "runAsync: its id"}},
)
async def execute(
    sandbox: SandboxId,
    session_id: SessionId,
    body: SessionExecuteBody,
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> JSONResponse:
    """Run a command in the session's shell: 200 with its output and exit code once
    it ends, or with `runAsync` 202 with its id at once."""
    run_async = bool(body.run_async or body.var_async)
    command = await shells.execute(
        inside,
        principal,
        sandbox,
        session_id,
        body.command,
        run_async=run_async,
        echo_input=not body.suppress_input_echo,
    )
    if run_async:
        return _camel(DaytonaExecuteResult(cmd_id=command.id), status.HTTP_202_ACCEPTED)
    result = DaytonaExecuteResult(
        cmd_id=command.id,
        output=command.output.text(),
        stdout=command.output.text("stdout"),
        stderr=command.output.text("stderr"),
        exit_code=command.exit_code,
    )
    return _camel(result)


@router.get("/{sessionId}/command/{commandId}")
async def get_command(
    sandbox: SandboxId,
    session_id: SessionId,
    command_id: CommandId,
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> JSONResponse:
    """A command and its exit code (null while it runs)."""
    _, command = await shells.get_command(inside, principal, sandbox, session_id, command_id)
    return JSONResponse(DaytonaCommand.of(command).model_dump(by_alias=True))


@router.get("/{sessionId}/command/{commandId}/logs")
async def command_logs(
    sandbox: SandboxId,
    session_id: SessionId,
    command_id: CommandId,
    principal: DaytonaPrincipal,
    inside: InsideDep,
    follow: Annotated[bool, Query(description="Only over a WebSocket")] = False,
) -> DaytonaLogs:
    """A command's output so far: both streams as produced, and each apart. To
    follow it, connect with a WebSocket (`follow=true`)."""
    _, command = await shells.get_command(inside, principal, sandbox, session_id, command_id)
    return DaytonaLogs(
        output=command.output.text(),
        stdout=command.output.text("stdout"),
        stderr=command.output.text("stderr"),
    )


@router.post("/{sessionId}/command/{commandId}/input", status_code=status.HTTP_204_NO_CONTENT)
async def send_input(
    sandbox: SandboxId,
    session_id: SessionId,
    command_id: CommandId,
    body: SendInputBody,
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> None:
    """Write to a running command's standard input (a newline is added if missing)."""
    await shells.send_input(inside, principal, sandbox, session_id, command_id, body.data)


async def socket_principal(socket: WebSocket) -> Principal:
    """The caller of a WebSocket, with the organization header checked as for HTTP."""
    principal = await connection_principal(socket)
    organization = socket.headers.get("x-daytona-organization-id")
    if organization and organization != principal.org_id:
        raise PermissionDenied("Invalid authentication context")
    return principal


async def refuse(socket: WebSocket, exc: SandbayError) -> None:
    """Answer the upgrade with the toolbox's HTTP error (the SDK reads its status)."""
    request = Request({**socket.scope, "type": "http", "method": "GET"})
    await socket.send_denial_response(
        render_error(request, exc.status_code, exc.error_type, exc.message)
    )


async def send_stream(socket: WebSocket, pieces: AsyncIterator[tuple[Stream, bytes]]) -> None:
    """Each piece behind its stream's marker, then a normal close; a client that
    goes away stops the following at once."""

    async def send() -> None:
        async for stream, data in pieces:
            await socket.send_bytes(MARKERS[stream] + data)
        await socket.close(code=1000)

    async def until_gone() -> None:
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.create_task(send()), asyncio.create_task(until_gone())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(
                asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError
            ):
                await task


@router.websocket("/entrypoint/logs")
async def follow_entrypoint_logs(socket: WebSocket, sandbox: SandboxId, inside: InsideDep) -> None:
    try:
        principal = await socket_principal(socket)
        pieces = await shells.follow_entrypoint(inside, principal, sandbox)
    except SandbayError as exc:
        await refuse(socket, exc)
        return
    await socket.accept()
    await send_stream(socket, pieces)


@router.websocket("/{sessionId}/command/{commandId}/logs")
async def follow_command_logs(
    socket: WebSocket,
    sandbox: SandboxId,
    session_id: SessionId,
    command_id: CommandId,
    inside: InsideDep,
) -> None:
    try:
        principal = await socket_principal(socket)
        session, command = await shells.get_command(
            inside, principal, sandbox, session_id, command_id
        )
    except SandbayError as exc:
        await refuse(socket, exc)
        return
    await socket.accept()
    await send_stream(socket, shells.follow_command(session, command))
