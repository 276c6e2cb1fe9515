"""/v1/environments/{env}/files: upload, download, list, stat, mkdir, move, delete,
search. Bodies stream both ways; nothing holds a whole file in memory."""

import tempfile
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from sandbay.api.deps import EnvRef, InsideDep, PrincipalDep
from sandbay.api.sse import ClosingStreamingResponse
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.files import FileInfo, FileList, MkdirRequest, MoveRequest
from sandbay.services.inside import files

router = APIRouter(prefix="/v1/environments", tags=["files"])

PathQuery = Annotated[
    str, Query(description="Absolute path in the environment (relative: under /workspace)")
]
_CHUNK = 64 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


async def _sized_body(request: Request) -> tuple[AsyncIterator[bytes], int, UploadFile | None]:
    """The request body and its size. With Content-Length it streams straight through;
    a chunked body (no length) is spooled to a temporary file first, since the
    archive format needs the size before the bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidRequest("Content-Length must be a number")
        return request.stream(), int(length), None
    spool = UploadFile(tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY))  # type: ignore[arg-type]  # noqa: SIM115
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        await spool.write(chunk)
    await spool.seek(0)
    return _upload_chunks(spool), size, spool


@router.put(
    "/{env}/files",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_file(
    env: EnvRef, path: PathQuery, request: Request, principal: PrincipalDep, inside: InsideDep
) -> FileInfo:
    """Upload the raw request body to `path` (parents are created; an existing file is
    replaced and keeps its mode). The file appears whole or not at all."""
    chunks, size, spool = await _sized_body(request)
    try:
        return await files.upload(inside, principal, env, path, chunks, size)
    finally:
        if spool is not None:
            await spool.close()


@router.get(
    "/{env}/files",
    response_class=Response,
    responses={
        200: {
            "description": "The file's bytes, streamed",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def download_file(
    env: EnvRef, path: PathQuery, principal: PrincipalDep, inside: InsideDep
) -> Response:
    """Download a file (symlinks are followed inside the environment), streamed."""
    info, body = await files.download(inside, principal, env, path)
    headers = {
        "Content-Length": str(info.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.name)}",
    }
    return ClosingStreamingResponse(body, media_type="application/octet-stream", headers=headers)


@router.delete("/{env}/files", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(
    env: EnvRef,
    path: PathQuery,
    principal: PrincipalDep,
    inside: InsideDep,
    recursive: Annotated[bool, Query(description="Delete a directory and its contents")] = False,
) -> None:
    """Delete a file, an empty directory, or (with `recursive`) a whole tree."""
    await files.remove(inside, principal, env, path, recursive=recursive)


@router.post("/{env}/files/upload", status_code=status.HTTP_201_CREATED)
async def upload_files(
    env: EnvRef, request: Request, principal: PrincipalDep, inside: InsideDep
) -> FileList:
    """Multipart upload (`multipart/form-data`): a `path` field naming the target
    directory (default /workspace) and one or more file parts, each written under
    its own file name. Parts are spooled to disk, never held in memory."""
    async with request.form(max_files=1000, max_fields=100) as form:
        directory = form.get("path")
        uploads = [
            (part.filename or name, _upload_chunks(part), part.size or 0)
            for name, part in form.multi_items()
            if isinstance(part, UploadFile)
        ]
        return await files.upload_many(
            inside, principal, env, str(directory or "/workspace"), uploads
        )


@router.get("/{env}/files/list")
async def list_files(
    env: EnvRef,
    principal: PrincipalDep,
    inside: InsideDep,
    path: PathQuery = "/workspace",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> FileList:
    """The entries of a directory with their metadata, directories first."""
    return await files.list_dir(inside, principal, env, path, limit=limit)


@router.get("/{env}/files/stat")
async def stat_file(
    env: EnvRef, path: PathQuery, principal: PrincipalDep, inside: InsideDep
) -> FileInfo:
    """Metadata of a path (a symlink is described, not followed)."""
    return await files.stat(inside, principal, env, path)


@router.get("/{env}/files/search")
async def search_files(
    env: EnvRef,
    pattern: Annotated[str, Query(description="Glob: `*.py`, or a path glob `src/*/x.py`")],
    principal: PrincipalDep,
    inside: InsideDep,
    path: PathQuery = "/workspace",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> FileList:
    """Find files under `path` by glob. A pattern without `/` matches names at any
    depth; one with `/` matches the path below `path` (`*` may cross directories)."""
    return await files.search(inside, principal, env, path, pattern, limit=limit)


@router.post("/{env}/files/mkdir", status_code=status.HTTP_201_CREATED)
async def make_directory(
    env: EnvRef, body: MkdirRequest, principal: PrincipalDep, inside: InsideDep
) -> FileInfo:
    """Create a directory and any missing parents (idempotent)."""
    return await files.mkdir(inside, principal, env, body)


@router.post("/{env}/files/move")
async def move_file(
    env: EnvRef, body: MoveRequest, principal: PrincipalDep, inside: InsideDep
) -> FileInfo:
    """Move or rename. 409 if the destination exists (unless `overwrite` and it is a
    file)."""
    return await files.move(inside, principal, env, body)
