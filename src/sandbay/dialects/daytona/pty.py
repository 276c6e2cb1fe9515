"""Daytona's PTY sessions (toolbox `/process/pty…`) over the native reattachable
terminal. The WebSocket speaks the daemon's protocol: the client offers the
`X-Daytona-Pty-Exit-Control` subprotocol (and its variables as an
`X-Daytona-Pty-Envs~<base64url JSON>` one); the server first sends the text frame
`{"type": "control", "status": "connected"}`, then the terminal's output as binary
frames, and at the end `{"type": "control", "status": "exited", "exitCode": N}` and
a normal close whose reason is `{"exitCode": N}`. Input comes as binary frames. A
terminal outlives its connections: connecting again replays what it wrote since."""

import asyncio
import base64
import binascii
import json
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, WebSocket, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.websockets import WebSocketDisconnect

from sandbay.api.deps import InsideDep
from sandbay.domain.errors import InvalidRequest, SandbayError
from sandbay.domain.files import WORKSPACE, normalize_path
from sandbay.runtime.inside import ProcessHandle
from sandbay.services.inside import shell_sessions as shells
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.shell_registry import Terminal
from sandbay.services.inside.target import touch

from .errors import DaytonaPrincipal
from .sessions import refuse, socket_principal

router = APIRouter(prefix="/toolbox/{sandboxId}/process/pty", tags=["daytona-toolbox"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID or name of the sandbox")]
PtyId = Annotated[str, Path(alias="sessionId", min_length=1, max_length=256)]
Size = Annotated[int, Field(ge=1, le=1000)]
EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
ENVS_PROTOCOL = "X-Daytona-Pty-Envs~"
_ACTIVITY_EVERY_S = 30.0


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PtyCreateBody(_Camel):
    id: str = Field(min_length=1, max_length=256)
    cwd: str | None = None
    envs: dict[str, str] | None = None
    cols: Size = 80
    rows: Size = 24
    lazy_start: bool = False


class PtyCreated(_Camel):
    session_id: str


class PtyResizeBody(BaseModel):
    cols: Size
    rows: Size


class PtySessionInfo(_Camel):
    id: str
    active: bool
    cols: int
    rows: int
    created_at: str
    cwd: str
    envs: dict[str, str]
    lazy_start: bool

    @classmethod
    def of(cls, terminal: Terminal) -> "PtySessionInfo":
        moment = terminal.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return cls(
            id=terminal.name,
            active=terminal.active,
            cols=terminal.cols,
            rows=terminal.rows,
            created_at=moment,
            cwd=terminal.cwd or WORKSPACE,  # where the agent starts it
            envs=terminal.envs,
            lazy_start=terminal.lazy,
        )


class PtyList(BaseModel):
    sessions: list[PtySessionInfo]


def _cwd(value: str | None) -> str | None:
    return normalize_path(value) if value else None


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_pty(
    sandbox: SandboxId, body: PtyCreateBody, principal: DaytonaPrincipal, inside: InsideDep
) -> PtyCreated:
    """Start a terminal (a login shell) under a name of the caller's; `lazyStart`
    starts it at the first connection."""
    await shells.create_terminal(
        inside,
        principal,
        sandbox,
        body.id,
        cwd=_cwd(body.cwd),
        envs=body.envs or {},
        cols=body.cols,
        rows=body.rows,
        lazy=body.lazy_start,
    )
    return PtyCreated(session_id=body.id)


@router.get("")
async def list_ptys(sandbox: SandboxId, principal: DaytonaPrincipal, inside: InsideDep) -> PtyList:
    """The sandbox's terminals."""
    found = await shells.list_terminals(inside, principal, sandbox)
    return PtyList(sessions=[PtySessionInfo.of(t) for t in found])


@router.get("/{sessionId}")
async def get_pty(
    sandbox: SandboxId, pty: PtyId, principal: DaytonaPrincipal, inside: InsideDep
) -> PtySessionInfo:
    """One terminal: its size, whether its shell still runs."""
    return PtySessionInfo.of(await shells.get_terminal(inside, principal, sandbox, pty))


@router.post("/{sessionId}/resize")
async def resize_pty(
    sandbox: SandboxId,
    pty: PtyId,
    body: PtyResizeBody,
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> PtySessionInfo:
    """Resize the terminal (what `stty size` inside then says)."""
    terminal = await shells.resize_terminal(inside, principal, sandbox, pty, body.cols, body.rows)
    return PtySessionInfo.of(terminal)


@router.delete("/{sessionId}")
async def kill_pty(
    sandbox: SandboxId, pty: PtyId, principal: DaytonaPrincipal, inside: InsideDep
) -> dict[str, str]:
    """Kill the terminal's shell and all it started; connected clients see it exit."""
    await shells.kill_terminal(inside, principal, sandbox, pty)
    return {"message": f"PTY session {pty} deleted"}


def _envs(socket: WebSocket) -> dict[str, str]:
    """The variables the client sent as a subprotocol token."""
    for offered in socket.scope.get("subprotocols", []):
        if offered.startswith(ENVS_PROTOCOL):
            token = offered[len(ENVS_PROTOCOL) :]
            try:
                raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            except (ValueError, binascii.Error) as exc:
                raise InvalidRequest("invalid PTY envs") from exc
            if not isinstance(raw, dict):
                raise InvalidRequest("invalid PTY envs")
            return {str(k): str(v) for k, v in raw.items()}
    return {}


@router.websocket("/create-connect")
async def create_connect(
    socket: WebSocket,
    sandbox: SandboxId,
    inside: InsideDep,
    id: Annotated[str, Query(min_length=1, max_length=256)],
    cols: Annotated[int, Query(ge=1, le=1000)] = 80,
    rows: Annotated[int, Query(ge=1, le=1000)] = 24,
    cwd: str | None = None,
) -> None:
    try:
        principal = await socket_principal(socket)
        await shells.create_terminal(
            inside,
            principal,
            sandbox,
            id,
            cwd=_cwd(cwd),
            envs=_envs(socket),
            cols=cols,
            rows=rows,
        )
        terminal, handle = await shells.connect_terminal(inside, principal, sandbox, id)
    except SandbayError as exc:
        await refuse(socket, exc)
        return
    await _serve(socket, inside, terminal, handle)


@router.websocket("/{sessionId}/connect")
async def connect(socket: WebSocket, sandbox: SandboxId, pty: PtyId, inside: InsideDep) -> None:
    try:
        principal = await socket_principal(socket)
        terminal, handle = await shells.connect_terminal(inside, principal, sandbox, pty)
    except SandbayError as exc:
        await refuse(socket, exc)
        return
    await _serve(socket, inside, terminal, handle)


async def _serve(
    socket: WebSocket, inside: InsideService, terminal: Terminal, handle: ProcessHandle
) -> None:
    control = EXIT_CONTROL in socket.scope.get("subprotocols", [])
    try:
        await handle.started()
        await socket.accept(subprotocol=EXIT_CONTROL if control else None)
        await socket.send_text(json.dumps({"type": "control", "status": "connected"}))
        with inside.holds.hold(terminal.environment_id):  # an open terminal is activity
            await _pump(socket, inside, terminal, handle, control)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        await handle.close()


async def _pump(
    socket: WebSocket,
    inside: InsideService,
    terminal: Terminal,
    handle: ProcessHandle,
    control: bool,
) -> None:
    async def output() -> None:
        at = handle.offset
        async for chunk in handle.output():
            await socket.send_bytes(chunk.data)
            at += len(chunk.data)
            terminal.delivered = max(terminal.delivered, at)

    async def keystrokes() -> None:
        loop = asyncio.get_running_loop()
        touched = loop.time()
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or (message.get("text") or "").encode()
            if data:
                await handle.write(data)
            if loop.time() - touched > _ACTIVITY_EVERY_S:  # typing keeps it awake
                touched = loop.time()
                await touch(inside.sessions, terminal.environment_id)

    reader = asyncio.create_task(output())
    writer = asyncio.create_task(keystrokes())
    done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    if reader not in done:  # the client left: the terminal waits for the next one
        reader.cancel()
        return
    writer.cancel()
    code = await handle.wait()
    exit_info = {"exitCode": code} if code is not None else {}
    if control:
        await socket.send_text(json.dumps({"type": "control", "status": "exited", **exit_info}))
    await socket.close(code=1000, reason=json.dumps(exit_info))
