"""Daytona's code interpreter (toolbox `/process/interpreter…`): contexts over REST and
cells over a WebSocket, as its daemon serves them. The socket takes one JSON request
(`code`, `contextId`, `envs`, `timeout` in seconds, 0 for none) and answers frames
`{"type", "text", "name", "value", "traceback"}` (`stdout`, `stderr`, `error`,
`control`) as the cell runs, then closes: 1000 when it ended, 4008 on a timeout."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.requests import HTTPConnection

from sandbay.api.deps import close_code, connection_principal, get_platform
from sandbay.dialects.kit import iso_millis
from sandbay.domain.errors import PermissionDenied, SandbayError
from sandbay.services.inside.interpreter import (
    DEFAULT_TIMEOUT_S,
    CellError,
    ContextInfo,
    Finished,
    Interpreters,
    Output,
    Run,
    RunEnd,
)

from .errors import DaytonaPrincipal

router = APIRouter(prefix="/toolbox/{sandboxId}/process/interpreter", tags=["daytona-toolbox"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID or name of the sandbox")]
#: Daytona's close code for a cell that ran out of time.
TIMEOUT_CLOSE = 4008
PROTOCOL_ERROR, GOING_AWAY, POLICY_VIOLATION = 1002, 1001, 1008


async def get_interpreters(connection: HTTPConnection) -> Interpreters:
    return get_platform(connection).interpreters


InterpretersDep = Annotated[Interpreters, Depends(get_interpreters)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaContext(_Camel):
    """InterpreterContext."""

    id: str
    cwd: str
    created_at: str
    active: bool
    language: str

    @classmethod
    def of(cls, info: ContextInfo) -> "DaytonaContext":
        created = iso_millis(info.created_at) or ""
        return cls(
            id=info.id,
            cwd=info.cwd,
            created_at=created,
            active=info.active,
            language=info.language,
        )


class DaytonaContextList(BaseModel):
    contexts: list[DaytonaContext]


class DaytonaCreateContext(BaseModel):
    cwd: str | None = None
    language: str | None = None


class DaytonaMessage(BaseModel):
    message: str


class DaytonaExecute(_Camel):
    """The first (and only) message of the execute socket."""

    code: str = Field(min_length=1)
    context_id: str | None = None
    envs: dict[str, str] | None = None
    timeout: int | None = Field(None, ge=0, description="Seconds; 0: no timeout")


@router.post("/context")
async def create_context(
    sandbox: SandboxId,
    body: DaytonaCreateContext,
    principal: DaytonaPrincipal,
    interpreters: InterpretersDep,
) -> DaytonaContext:
    """A new isolated Python context (its own namespace and process), in `cwd` (default:
    the sandbox's working directory). Only `python` is supported."""
    info = await interpreters.create_context(
        principal, sandbox, cwd=body.cwd, language=body.language
    )
    return DaytonaContext.of(info)


@router.get("/context")
async def list_contexts(
    sandbox: SandboxId, principal: DaytonaPrincipal, interpreters: InterpretersDep
) -> DaytonaContextList:
    """The contexts created by callers (the default context is not listed)."""
    infos = await interpreters.list_contexts(principal, sandbox)
    return DaytonaContextList(contexts=[DaytonaContext.of(i) for i in infos])


@router.delete("/context/{id}")
async def delete_context(
    sandbox: SandboxId,
    id: str,
    principal: DaytonaPrincipal,
    interpreters: InterpretersDep,
) -> DaytonaMessage:
    """Delete a context and stop its interpreter (the default context cannot be)."""
    await interpreters.delete_context(principal, sandbox, id)
    return DaytonaMessage(message="Context deleted successfully")


def _frame(chunk: Output | CellError) -> str:
    fields = {"type": "error", "text": "", "name": "", "value": "", "traceback": ""}
    if isinstance(chunk, Output):
        fields.update(type=chunk.stream, text=chunk.text)
    else:
        fields.update(name=chunk.name, value=chunk.value, traceback=chunk.traceback)
    return DaytonaFrame(**fields).model_dump_json()


class DaytonaFrame(BaseModel):
    type: str
    text: str
    name: str
    value: str
    traceback: str


async def _relay(socket: WebSocket, run: Run) -> None:
    async for chunk in run.chunks():
        if isinstance(chunk, Finished):
            control = "interrupted" if chunk.end is RunEnd.TIMEOUT else "completed"
            if chunk.end is not RunEnd.ENDED:
                control_frame = DaytonaFrame(
                    type="control", text=control, name="", value="", traceback=""
                )
                await socket.send_text(control_frame.model_dump_json())
            if chunk.end is RunEnd.TIMEOUT:
                await socket.close(code=TIMEOUT_CLOSE)
            elif chunk.end is RunEnd.ENDED:
                await socket.close(code=GOING_AWAY, reason=chunk.reason[:120])
            else:
                await socket.close(code=1000)
            return
        await socket.send_text(_frame(chunk))


async def _request(socket: WebSocket) -> DaytonaExecute | None:
    """The execute request, or None once the socket is closed saying why not."""
    try:
        message = await socket.receive()
    except (WebSocketDisconnect, RuntimeError):
        return None
    if message["type"] == "websocket.disconnect":
        return None
    try:
        return DaytonaExecute.model_validate_json(message.get("text") or message.get("bytes") or "")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid JSON payload"
        code = PROTOCOL_ERROR if first.get("type") == "json_invalid" else POLICY_VIOLATION
        await socket.close(code=code, reason=reason[:120])
        return None


@router.websocket("/execute")
async def execute(socket: WebSocket, sandbox: SandboxId, interpreters: InterpretersDep) -> None:
    """Run a cell in a context, streaming its output (see the module's docstring)."""
    try:
        principal = await connection_principal(socket)
        organization = socket.headers.get("x-daytona-organization-id")
        if organization and organization != principal.org_id:
            raise PermissionDenied("Invalid authentication context")
    except SandbayError as exc:
        await socket.close(code=close_code(exc), reason=exc.message[:120])
        return
    await socket.accept()
    request = await _request(socket)
    if request is None:
        return
    timeout = DEFAULT_TIMEOUT_S if request.timeout is None else request.timeout
    try:
        run = await interpreters.execute(
            principal,
            sandbox,
            code=request.code,
            context_id=request.context_id,
            envs=request.envs or {},
            timeout=timeout,
        )
    except SandbayError as exc:
        await socket.close(code=POLICY_VIOLATION, reason=exc.message[:120])
        return
    try:
        await _relay(socket, run)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the caller left: the cell runs on, unread
    finally:
        run.detach()
