"""File use cases inside an environment. Every path goes through
`domain.files.normalize_path` first; reads need `environments:read`, writes
`environments:exec`; all of them count as activity and need the workload running."""

import re
from collections.abc import AsyncIterator

from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.files import (
    MAX_LIST_ENTRIES,
    ContentMatch,
    FileInfo,
    FileList,
    MkdirRequest,
    MoveRequest,
    ReplaceOutcome,
    normalize_path,
)
from sandbay.domain.keys import Permission, Principal
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import Target, open_target

READ = Permission.ENVIRONMENTS_READ
WRITE = Permission.ENVIRONMENTS_EXEC
Upload = tuple[str, AsyncIterator[bytes], int]  # file name, bytes, size
PERMISSION_MODE = re.compile(r"0?[0-7]{3,4}")


async def _target(inside: InsideService, principal: Principal, env: str, write: bool) -> Target:
    return await open_target(inside.sessions, principal, env, WRITE if write else READ)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIST_ENTRIES:
        raise InvalidRequest(f"limit must be 1-{MAX_LIST_ENTRIES}")
    return limit


async def upload(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    chunks: AsyncIterator[bytes],
    size: int,
) -> FileInfo:
    full = normalize_path(path)
    target = await _target(inside, principal, env, write=True)
    return await inside.files.write(target.environment_id, full, chunks, size, user=target.user)


def _file_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        raise InvalidRequest(f"file name {name[:60]!r} is not usable")
    return base


async def upload_many(
    inside: InsideService, principal: Principal, env: str, directory: str, uploads: list[Upload]
) -> FileList:
    """Multipart upload: each part lands in `directory` under its own file name."""
    folder = normalize_path(directory)
    if not uploads:
        raise InvalidRequest("no file parts in the form")
    target = await _target(inside, principal, env, write=True)
    written = []
    for name, chunks, size in uploads:
        path = f"{folder.rstrip('/')}/{_file_name(name)}"
        written.append(
            await inside.files.write(target.environment_id, path, chunks, size, user=target.user)
        )
    return FileList(data=written, truncated=False)


async def download(
    inside: InsideService, principal: Principal, env: str, path: str
) -> tuple[FileInfo, AsyncIterator[bytes]]:
    full = normalize_path(path)
    target = await _target(inside, principal, env, write=False)
    return await inside.files.read(target.environment_id, full)


async def stat(inside: InsideService, principal: Principal, env: str, path: str) -> FileInfo:
    full = normalize_path(path)
    target = await _target(inside, principal, env, write=False)
    return await inside.files.stat(target.environment_id, full)


MAX_DEPTH = 64


async def list_dir(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    limit: int,
    depth: int = 1,
) -> FileList:
    """A directory's entries; with `depth` > 1 also theirs, that many levels down."""
    full = normalize_path(path)
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidRequest(f"depth must be 1-{MAX_DEPTH}")
    target = await _target(inside, principal, env, write=False)
    entries, truncated = await inside.files.list_dir(
        target.environment_id, full, user=target.user, limit=_limit(limit), depth=depth
    )
    return FileList(data=entries, truncated=truncated)


async def search(
    inside: InsideService, principal: Principal, env: str, root: str, pattern: str, *, limit: int
) -> FileList:
    """Glob search: a pattern without '/' matches names at any depth (`*.py`); with
    '/' it matches the path below `root` (`src/*/test_*.py`, where `*` may span
    directories, as in find -path)."""
    full = normalize_path(root)
    if not pattern or len(pattern) > 1024 or "\x00" in pattern:
        raise InvalidRequest("pattern must be 1-1024 characters without NUL bytes")
    target = await _target(inside, principal, env, write=False)
    entries, truncated = await inside.files.find(
        target.environment_id, full, pattern.lstrip("/"), user=target.user, limit=_limit(limit)
    )
    return FileList(data=entries, truncated=truncated)


async def mkdir(
    inside: InsideService, principal: Principal, env: str, body: MkdirRequest
) -> FileInfo:
    full = normalize_path(body.path)
    target = await _target(inside, principal, env, write=True)
    await inside.files.mkdir(target.environment_id, full, mode=body.mode, user=target.user)
    return await inside.files.stat(target.environment_id, full)


async def move(
    inside: InsideService, principal: Principal, env: str, body: MoveRequest
) -> FileInfo:
    source, destination = normalize_path(body.source), normalize_path(body.destination)
    if source == "/" or destination.startswith(source.rstrip("/") + "/"):
        raise InvalidRequest("cannot move a directory into itself")
    target = await _target(inside, principal, env, write=True)
    await inside.files.stat(target.environment_id, source)  # 404 if absent
    try:
        existing = await inside.files.stat(target.environment_id, destination)
    except NotFound:
        existing = None
    if existing is not None and (existing.is_dir or not body.overwrite):
        raise Conflict(f"{destination} already exists")
    await inside.files.move(target.environment_id, source, destination, user=target.user)
    return await inside.files.stat(target.environment_id, destination)


async def remove(
    inside: InsideService, principal: Principal, env: str, path: str, *, recursive: bool
) -> None:
    full = normalize_path(path)
    if full == "/":
        raise InvalidRequest("cannot delete /")
    target = await _target(inside, principal, env, write=True)
    await inside.files.stat(target.environment_id, full)  # 404 if absent
    await inside.files.remove(target.environment_id, full, recursive=recursive, user=target.user)


def _pattern(pattern: str) -> str:
    if not pattern or len(pattern) > 1024 or "\x00" in pattern:
        raise InvalidRequest("pattern must be 1-1024 characters without NUL bytes")
    return pattern


async def search_content(
    inside: InsideService, principal: Principal, env: str, root: str, text: str, *, limit: int
) -> tuple[list[ContentMatch], bool]:
    """grep, literally: the lines holding `text` in the text files below `root` (or in
    the file `root`), `.git` skipped; and whether there were more than `limit`."""
    full = normalize_path(root)
    target = await _target(inside, principal, env, write=False)
    return await inside.files.search_content(
        target.environment_id, full, _pattern(text), user=target.user, limit=_limit(limit)
    )


MAX_REPLACE_FILES = 1000


async def replace(
    inside: InsideService,
    principal: Principal,
    env: str,
    paths: list[str],
    pattern: str,
    value: str,
) -> list[ReplaceOutcome]:
    """Replace `pattern` (literally) with `value` in each file; one outcome per file,
    named as the caller named it."""
    if not 1 <= len(paths) <= MAX_REPLACE_FILES:
        raise InvalidRequest(f"files must name 1-{MAX_REPLACE_FILES} files")
    full = [normalize_path(p) for p in paths]
    target = await _target(inside, principal, env, write=True)
    outcomes = await inside.files.replace(
        target.environment_id, full, _pattern(pattern), value, user=target.user
    )
    return [o.model_copy(update={"file": p}) for o, p in zip(outcomes, paths, strict=False)]


async def set_permissions(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    mode: str | None,
    owner: str | None,
    group: str | None,
) -> FileInfo:
    """chmod (octal `mode`) and chown (`owner`, `group`: names or numbers); what is
    None stays as it is."""
    full = normalize_path(path)
    if mode is not None and not PERMISSION_MODE.fullmatch(mode):
        raise InvalidRequest("mode must be octal permission bits such as 644 or 0755")
    target = await _target(inside, principal, env, write=True)
    return await inside.files.set_permissions(
        target.environment_id, full, mode=mode, owner=owner, group=group, user=target.user
    )
