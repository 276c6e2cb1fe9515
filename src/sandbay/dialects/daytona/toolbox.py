"""Daytona's toolbox (what its daemon serves inside each sandbox) at
`/toolbox/{sandboxId}/…`, as the SDK reaches it through `toolboxProxyUrl`: process
execute and code run, and the file system (bulk upload and download, download, list
to any depth, info, folder, move, delete, content find, name search, replace,
permissions), over the native exec and files services. A missing or refused path
answers the daemon's FILE_NOT_FOUND or FILE_ACCESS_DENIED."""

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.datastructures import UploadFile

from sandbay.api.deps import InsideDep
from sandbay.api.sse import ClosingStreamingResponse
from sandbay.dialects.kit import native
from sandbay.domain.errors import InvalidRequest, SandbayError, WaitTimeout
from sandbay.domain.exec import ExecRequest
from sandbay.domain.files import (
    MAX_LIST_ENTRIES,
    WORKSPACE,
    FileInfo,
    FileType,
    MkdirRequest,
    MoveRequest,
)
from sandbay.domain.files import normalize_path as absolute
from sandbay.domain.keys import Permission, Principal
from sandbay.services.inside import exec as exec_service
from sandbay.services.inside import files
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import open_target

from .errors import DaytonaPrincipal, file_errors
from .multipart import download_response, file_parts

router = APIRouter(prefix="/toolbox/{sandboxId}", tags=["daytona-toolbox"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID or name of the sandbox")]
#: The first of zsh, bash and sh, as the daemon picks its shell.
SHELL = (
    'for s in zsh bash; do command -v "$s" >/dev/null 2>&1 && exec "$s" -c "$1"; done;'
    ' exec sh -c "$1"'
)
CODE_RUNNERS = {
    "python": (["python3", "-u", "-"], ""),
    "javascript": (["node", "-"], "process.argv.splice(1, 1);\n"),
}


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaExecuteRequest(_Camel):
    command: str
    cwd: str | None = None
    envs: dict[str, str] | None = None
    timeout: int | None = Field(None, description="Seconds; none: the server's exec timeout")


class DaytonaCodeRunRequest(_Camel):
    code: str
    language: str = "python"
    argv: list[str] | None = None
    envs: dict[str, str] | None = None
    timeout: int | None = None


class DaytonaExecuteResponse(_Camel):
    exit_code: int
    result: str


class DaytonaFileInfo(_Camel):
    """The daemon's FileInfo (`mode` as Go prints it, `permissions` in octal)."""

    name: str
    path: str
    size: int
    mode: str
    mod_time: str
    modified_at: str
    is_dir: bool
    owner: str
    group: str
    permissions: str

    @classmethod
    def of(cls, info: FileInfo) -> "DaytonaFileInfo":
        perms = int(info.mode, 8) & 0o777
        kind = {FileType.DIRECTORY: "d", FileType.SYMLINK: "L"}.get(info.type, "-")
        bits = "".join(
            flag if perms & (1 << (8 - i)) else "-" for i, flag in enumerate("rwxrwxrwx")
        )
        moment = info.modified_at.astimezone(UTC)
        return cls(
            name=info.name,
            path=info.path,
            size=info.size,
            mode=kind + bits,
            mod_time=moment.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
            modified_at=moment.isoformat().replace("+00:00", "Z"),
            is_dir=info.is_dir,
            owner=info.owner or "",
            group=info.group or "",
            permissions=f"{perms:04o}",
        )


class DaytonaDir(BaseModel):
    dir: str


class DaytonaMatch(BaseModel):
    file: str
    line: int
    content: str


class DaytonaSearchResult(BaseModel):
    files: list[str]


class DaytonaReplaceRequest(_Camel):
    files: list[str] = Field(min_length=1, max_length=1000)
    pattern: str = Field(min_length=1)
    new_value: str


class DaytonaReplaceResult(BaseModel):
    file: str
    success: bool
    error: str | None = None


class DaytonaDownloadRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=1000)


class DaytonaUploaded(BaseModel):
    path: str
    bytes: int


class DaytonaUploadResult(BaseModel):
    files: list[DaytonaUploaded]
    errors: list[str] | None = None


def _cwd(value: str | None) -> str | None:
    return absolute(value) if value else None


async def _run(
    toolbox: InsideService, principal: Principal, sandbox: str, body: ExecRequest
) -> DaytonaExecuteResponse:
    result = await exec_service.run_combined(toolbox, principal, sandbox, body)
    if result.timed_out:
        raise WaitTimeout("command execution timeout")
    code = result.exit_code if result.exit_code is not None else -1
    return DaytonaExecuteResponse(exit_code=code, result=result.output)


@router.post("/process/execute")
async def execute_command(
    sandbox: SandboxId,
    body: DaytonaExecuteRequest,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> DaytonaExecuteResponse:
    """Run a shell command (zsh, bash or sh) to completion: its exit code and its
    output (stdout and stderr interleaved). A timeout kills it and answers 408."""
    if not body.command.strip():
        raise InvalidRequest("command cannot be empty or whitespace-only")
    request = native(
        ExecRequest,
        command=["/bin/sh", "-c", SHELL, "sh", body.command],
        cwd=_cwd(body.cwd),
        env=body.envs,
        timeout=body.timeout or None,
    )
    return await _run(toolbox, principal, sandbox, request)


@router.post("/process/code-run")
async def code_run(
    sandbox: SandboxId,
    body: DaytonaCodeRunRequest,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> DaytonaExecuteResponse:
    """Run code with the sandbox's interpreter (`python3`, or `node` for
    javascript): its exit code and output."""
    if body.language not in CODE_RUNNERS:
        raise InvalidRequest(f"unsupported language: {body.language}")
    argv, prelude = CODE_RUNNERS[body.language]
    request = native(
        ExecRequest,
        command=[*argv, *(body.argv or [])],
        env=body.envs,
        timeout=body.timeout or None,
        stdin=prelude + body.code,
    )
    return await _run(toolbox, principal, sandbox, request)


@router.get("/files")
async def list_files(
    sandbox: SandboxId,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
    path: Annotated[str, Query(description="Directory; relative to /workspace")] = ".",
    depth: Annotated[int | None, Query(ge=1, le=64, description="Levels; 1 by default")] = None,
) -> list[DaytonaFileInfo]:
    """The entries of a directory, and with `depth` theirs, that many levels down."""
    with file_errors():
        listing = await files.list_dir(
            toolbox, principal, sandbox, path, limit=MAX_LIST_ENTRIES, depth=depth or 1
        )
    return [DaytonaFileInfo.of(entry) for entry in listing.data]


@router.get("/files/info")
async def file_info(
    sandbox: SandboxId, path: str, principal: DaytonaPrincipal, toolbox: InsideDep
) -> DaytonaFileInfo:
    """Metadata of one path."""
    with file_errors():
        return DaytonaFileInfo.of(await files.stat(toolbox, principal, sandbox, path))


@router.delete("/files", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(
    sandbox: SandboxId,
    path: str,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
    recursive: bool = False,
) -> None:
    """Delete a file, or a directory with `recursive`."""
    with file_errors():
        await files.remove(toolbox, principal, sandbox, path, recursive=recursive)


@router.post("/files/folder", status_code=status.HTTP_201_CREATED)
async def create_folder(
    sandbox: SandboxId,
    path: str,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
    mode: str = "0755",
) -> None:
    """Create a directory and its parents."""
    with file_errors():
        await files.mkdir(toolbox, principal, sandbox, native(MkdirRequest, path=path, mode=mode))


@router.post("/files/move")
async def move_file(
    sandbox: SandboxId,
    source: str,
    destination: str,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> None:
    """Move or rename a path."""
    body = native(MoveRequest, source=source, destination=destination, overwrite=True)
    with file_errors():
        await files.move(toolbox, principal, sandbox, body)


@router.post("/files/bulk-upload")
async def upload_files(
    sandbox: SandboxId, request: Request, principal: DaytonaPrincipal, toolbox: InsideDep
) -> Response:
    """Multipart upload: `files[i].path` names where `files[i].file` goes (parents
    are created, existing files replaced). 400 lists the files that failed."""
    await open_target(toolbox.sessions, principal, sandbox, Permission.ENVIRONMENTS_EXEC)
    done: list[DaytonaUploaded] = []
    async with request.form(max_files=1000, max_fields=1000) as form:
        uploads, errors = file_parts(form)
        for path, part in uploads:
            try:
                info = await files.upload(
                    toolbox, principal, sandbox, path, _chunks(part), part.size or 0
                )
            except SandbayError as exc:
                errors.append(f"{path}: {exc.message}")
                continue
            done.append(DaytonaUploaded(path=path, bytes=info.size))
    result = DaytonaUploadResult(files=done, errors=errors or None)
    code = status.HTTP_400_BAD_REQUEST if errors else status.HTTP_200_OK
    return Response(
        result.model_dump_json(exclude_none=True), status_code=code, media_type="application/json"
    )


async def _chunks(part: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await part.read(64 * 1024):
        yield chunk


@router.post(
    "/files/bulk-download",
    response_class=Response,
    responses={200: {"content": {"multipart/form-data": {}}}},
)
async def download_files(
    sandbox: SandboxId,
    body: Annotated[DaytonaDownloadRequest, Body()],
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> Response:
    """A multipart stream: per requested path a `file` part (its bytes) or an `error`
    part (JSON), each naming the path as requested."""
    await open_target(toolbox.sessions, principal, sandbox, Permission.ENVIRONMENTS_READ)

    async def opener(path: str) -> tuple[FileInfo, AsyncIterator[bytes]]:
        return await files.download(toolbox, principal, sandbox, path)

    return download_response(body.paths, opener)


@router.get("/files/find")
async def find_in_files(
    sandbox: SandboxId,
    path: str,
    pattern: str,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> list[DaytonaMatch]:
    """grep: the lines holding `pattern` (literally) in the files below `path`."""
    with file_errors():
        matches, _ = await files.search_content(
            toolbox, principal, sandbox, path, pattern, limit=MAX_LIST_ENTRIES
        )
    return [DaytonaMatch(file=m.file, line=m.line, content=m.content) for m in matches]


@router.get("/files/search")
async def search_files(
    sandbox: SandboxId,
    path: str,
    pattern: str,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> DaytonaSearchResult:
    """The files and directories below `path` whose names match the glob `pattern`."""
    with file_errors():
        found = await files.search(
            toolbox, principal, sandbox, path, pattern, limit=MAX_LIST_ENTRIES
        )
    return DaytonaSearchResult(files=[entry.path for entry in found.data])


@router.post("/files/replace")
async def replace_in_files(
    sandbox: SandboxId,
    body: DaytonaReplaceRequest,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> list[DaytonaReplaceResult]:
    """Replace `pattern` (literally) with `newValue` in each file: one result per file
    (a file that cannot be changed says why and does not stop the others)."""
    with file_errors():
        outcomes = await files.replace(
            toolbox, principal, sandbox, body.files, body.pattern, body.new_value
        )
    return [DaytonaReplaceResult(file=o.file, success=o.success, error=o.error) for o in outcomes]


@router.post("/files/permissions")
async def set_file_permissions(
    sandbox: SandboxId,
    path: str,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
    mode: Annotated[str | None, Query(description="Octal, e.g. 755")] = None,
    owner: Annotated[str | None, Query(description="User name or uid")] = None,
    group: Annotated[str | None, Query(description="Group name or gid")] = None,
) -> None:
    """chmod and chown; what is not given stays as it is."""
    with file_errors():
        await files.set_permissions(
            toolbox, principal, sandbox, path, mode=mode or None, owner=owner, group=group
        )


@router.get(
    "/files/download",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_file(
    sandbox: SandboxId, path: str, principal: DaytonaPrincipal, toolbox: InsideDep
) -> Response:
    """One file's bytes, streamed."""
    with file_errors():
        info, chunks = await files.download(toolbox, principal, sandbox, path)
    headers = {
        "Content-Length": str(info.size),
        "Content-Disposition": f"attachment; filename*=utf-8''{quote(info.name)}",
    }
    return ClosingStreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@router.get("/work-dir")
async def work_dir(
    sandbox: SandboxId, principal: DaytonaPrincipal, toolbox: InsideDep
) -> DaytonaDir:
    """Where commands run by default."""
    await open_target(toolbox.sessions, principal, sandbox, Permission.ENVIRONMENTS_READ)
    return DaytonaDir(dir=WORKSPACE)


@router.get("/user-home-dir")
async def user_home_dir(
    sandbox: SandboxId, principal: DaytonaPrincipal, toolbox: InsideDep
) -> DaytonaDir:
    """The sandbox user's home directory."""
    request = ExecRequest(command=["/bin/sh", "-c", 'printf %s "$HOME"'])
    result = await exec_service.run_command(toolbox, principal, sandbox, request)
    return DaytonaDir(dir=result.stdout or "/")
