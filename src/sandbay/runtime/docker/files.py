"""Files inside a Docker container. Contents travel through the engine's archive API
(a tar stream built or parsed on the fly, never held whole), which resolves every
path and symlink inside the container's own root, volumes included; listings,
search and the small mutations run GNU find / coreutils through exec."""

import asyncio
import base64
import contextlib
import json
import posixpath
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sandbay.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from sandbay.domain.files import FileInfo, FileType, name_of, parent_of
from sandbay.runtime.docker.engine import ByteReader, Engine
from sandbay.runtime.docker.exec import DockerExec
from sandbay.runtime.docker.provider import container_name

_CHUNK = 64 * 1024
_MAX_LINKS = 16
# Go's os.FileMode type bits, as the archive stat header carries them.
_GO_DIR, _GO_SYMLINK = 1 << 31, 1 << 27
_GO_OTHER = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 23) | (1 << 21) | (1 << 19)
#: find -printf: type, size, mode, mtime, owner, group, link target, path.
_FIELDS = ("%y", "%s", "%m", "%T@", "%u", "%g", "%l", "%p")
_PRINTF = "\\0".join(_FIELDS) + "\\0"
_LIST_SH = 'find -H "$1" -mindepth 1 -maxdepth 1 -printf "$2" | head -z -n "$3"'
_FIND_SH = (
    'root=$1; shift; find -H "$root" \\( -path /proc -o -path /sys \\) -prune -o '
    '"$@" -printf "$FMT" | head -z -n "$COUNT"'
)


def _go_time(value: str) -> datetime:
    """Go's RFC 3339 with nanoseconds, which `fromisoformat` takes only to micro."""
    if not value:
        return datetime.fromtimestamp(0, UTC)
    head, _, frac = value.rstrip("Z").partition(".")
    micro = int((frac + "000000")[:6]) if frac else 0
    return datetime.fromisoformat(head).replace(microsecond=micro, tzinfo=UTC)


def _from_stat(path: str, raw: dict[str, object]) -> FileInfo:
    mode = int(raw.get("mode", 0))  # type: ignore[call-overload]
    if mode & _GO_DIR:
        kind = FileType.DIRECTORY
    elif mode & _GO_SYMLINK:
        kind = FileType.SYMLINK
    elif mode & _GO_OTHER:
        kind = FileType.OTHER
    else:
        kind = FileType.FILE
    return FileInfo(
        name=name_of(path),
        path=path,
        type=kind,
        is_dir=kind is FileType.DIRECTORY,
        size=int(raw.get("size", 0)),  # type: ignore[call-overload]
        mode=f"{mode & 0o7777:04o}",
        modified_at=_go_time(str(raw.get("mtime") or "")),
        link_target=str(raw.get("linkTarget") or "") or None,
    )


def _from_find(fields: list[bytes]) -> FileInfo:
    kind_char, size, mode, mtime, owner, group, link, path = (
        f.decode(errors="replace") for f in fields
    )
    kind = {"f": FileType.FILE, "d": FileType.DIRECTORY, "l": FileType.SYMLINK}.get(
        kind_char, FileType.OTHER
    )
    return FileInfo(
        name=name_of(path),
        path=path,
        type=kind,
        is_dir=kind is FileType.DIRECTORY,
        size=int(size),
        mode=f"{int(mode, 8):04o}",
        modified_at=datetime.fromtimestamp(float(mtime), UTC),
        owner=owner,
        group=group,
        link_target=link or None,
    )


def _tool_error(path: str, stderr: bytes) -> Exception:
    """Map a coreutils complaint to our error tree."""
    text = stderr.decode(errors="replace").strip().splitlines()
    message = text[-1] if text else f"{path}: operation failed"
    lowered = message.lower()
    if "no such file" in lowered:
        return NotFound(message)
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return PermissionDenied(message)
    if any(s in lowered for s in ("exists", "not empty", "not a directory", "is a directory")):
        return Conflict(message)
    return InvalidRequest(message)


async def _tar_member(reader: ByteReader) -> AsyncIterator[bytes]:
    """The bytes of the first regular file of a tar stream, chunk by chunk."""
    pax_size: int | None = None
    while True:
        header = tarfile.TarInfo.frombuf(
            await reader.read_exactly(512), tarfile.ENCODING, "surrogateescape"
        )
        padded = (header.size + 511) // 512 * 512
        if header.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            records = (await reader.read_exactly(padded))[: header.size]
            for record in records.split(b"\n"):
                if b" size=" in record:
                    pax_size = int(record.split(b"=", 1)[1])
            continue
        if header.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            await reader.read_exactly(padded)
            continue
        if header.type not in tarfile.REGULAR_TYPES:
            raise InvalidRequest("not a regular file")
        remaining = pax_size if pax_size is not None else header.size
        while remaining:
            chunk = await reader.read_some(min(remaining, _CHUNK))
            if not chunk:
                raise InvalidRequest("the file was cut short while it was read")
            remaining -= len(chunk)
            yield chunk
        return


class DockerFiles:
    """`FileSystem` over the Docker archive API and exec."""

    def __init__(self, engine: Engine, runner: DockerExec) -> None:
        self._engine = engine
        self._runner = runner
        self._ids: dict[tuple[str, str | None], tuple[int, int]] = {}

    def _archive(self, environment_id: str) -> str:
        return f"/containers/{container_name(environment_id)}/archive"

    async def stat(self, environment_id: str, path: str) -> FileInfo:
        response = await self._engine.http.head(
            self._archive(environment_id), params={"path": path}
        )
        if response.status_code == 404:
            raise NotFound(f"{path}: no such file or directory")
        await self._engine.check(response)
        header = response.headers.get("X-Docker-Container-Path-Stat", "")
        return _from_stat(path, json.loads(base64.b64decode(header or "e30=")))

    async def _resolve(self, environment_id: str, path: str) -> FileInfo:
        """Follow symlinks of the last component (the engine resolves the others)."""
        info = await self.stat(environment_id, path)
        for _ in range(_MAX_LINKS):
            if info.type is not FileType.SYMLINK or not info.link_target:
                return info
            target = posixpath.normpath(posixpath.join(parent_of(info.path), info.link_target))
            info = await self.stat(environment_id, target)
        raise InvalidRequest(f"{path}: too many levels of symbolic links")

    async def read(self, environment_id: str, path: str) -> tuple[FileInfo, AsyncIterator[bytes]]:
        info = await self._resolve(environment_id, path)
        if info.type is not FileType.FILE:
            raise InvalidRequest(f"{path} is a {info.type.value}, not a file")
        response = await self._engine.open_stream(
            "GET", self._archive(environment_id), {"path": info.path}
        )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in _tar_member(ByteReader(response.aiter_raw())):
                    yield chunk
            finally:
                await response.aclose()

        return info, body()

    async def _owner(self, environment_id: str, user: str | None) -> tuple[int, int]:
        """Numeric uid/gid of `user` (the image's default user when None), once per
        environment: tar headers carry numbers, not names."""
        key = (environment_id, user)
        if key not in self._ids:
            code, out, err = await self._runner.run_helper(
                environment_id, ["/bin/sh", "-c", "id -u; id -g"], user=user
            )
            if code != 0:
                raise InvalidRequest(f"cannot resolve user {user!r}: {err.decode().strip()}")
            uid, gid = (int(x) for x in out.split())
            self._ids[key] = (uid, gid)
        return self._ids[key]

    async def _prepare_parent(self, environment_id: str, path: str, user: str | None) -> None:
        parent = parent_of(path)
        try:
            info = await self._resolve(environment_id, parent)
        except NotFound:
            # Created as the environment's user, so it can write there afterwards.
            await self.mkdir(environment_id, parent, mode="0755", user=user)
            return
        if info.type is not FileType.DIRECTORY:
            raise Conflict(f"{parent} is not a directory")

    async def write(
        self,
        environment_id: str,
        path: str,
        chunks: AsyncIterator[bytes],
        size: int,
        *,
        user: str | None,
    ) -> FileInfo:
        if path == "/":
            raise InvalidRequest("cannot write to /")
        mode = 0o644
        try:
            existing = await self._resolve(environment_id, path)
        except NotFound:
            existing = None
        if existing is not None:
            if existing.type is not FileType.FILE:
                raise Conflict(f"{path} is a {existing.type.value}")
            path, mode = existing.path, int(existing.mode, 8)
        await self._prepare_parent(environment_id, path, user)
        uid, gid = await self._owner(environment_id, user)
        # Written beside the target, then renamed over it: the file appears whole or
        # not at all, whatever happens to the upload.
        temp = f"{parent_of(path).rstrip('/')}/.{name_of(path)}.upload-{uuid.uuid4().hex[:12]}"
        member = tarfile.TarInfo(temp.lstrip("/"))
        member.size, member.mode, member.uid, member.gid = size, mode, uid, gid
        member.mtime = int(time.time())

        async def tar() -> AsyncIterator[bytes]:
            yield member.tobuf(format=tarfile.PAX_FORMAT)
            sent = 0
            async for chunk in chunks:
                sent += len(chunk)
                if sent > size:
                    raise InvalidRequest(f"the body is longer than the {size} bytes announced")
                yield chunk
            if sent != size:
                raise InvalidRequest(f"the body ended after {sent} of {size} bytes")
            yield b"\0" * ((-size) % 512) + b"\0" * 1024

        try:
            response = await self._engine.http.put(
                self._archive(environment_id), params={"path": "/"}, content=tar()
            )
            await self._engine.check(response)
            code, _, err = await self._runner.run_helper(
                environment_id, ["mv", "-f", "--", temp, path], user="0"
            )
            if code != 0:
                raise _tool_error(path, err)
        except BaseException:
            await asyncio.shield(self._discard(environment_id, temp))
            raise
        return await self.stat(environment_id, path)

    async def _discard(self, environment_id: str, temp: str) -> None:
        with contextlib.suppress(Exception):  # best effort: a stray temp file is harmless
            await self._runner.run_helper(environment_id, ["rm", "-f", "--", temp], user="0")

    async def _find(
        self, environment_id: str, argv: list[str], user: str | None, limit: int
    ) -> tuple[list[FileInfo], bool]:
        code, out, err = await self._runner.run_helper(environment_id, argv, user=user)
        fields = out.split(b"\0")[:-1]
        if code != 0 and not fields:
            raise _tool_error(argv[-1], err)
        groups = len(_FIELDS)
        entries = [
            _from_find(fields[i : i + groups]) for i in range(0, len(fields) - groups + 1, groups)
        ]
        return entries[:limit], len(entries) > limit

    async def list_dir(
        self, environment_id: str, path: str, *, user: str | None, limit: int
    ) -> tuple[list[FileInfo], bool]:
        info = await self._resolve(environment_id, path)
        if info.type is not FileType.DIRECTORY:
            raise InvalidRequest(f"{path} is not a directory")
        count = str((limit + 1) * len(_FIELDS))
        argv = ["/bin/sh", "-c", _LIST_SH, "sh", path, _PRINTF, count]
        entries, truncated = await self._find(environment_id, argv, user, limit)
        entries.sort(key=lambda e: (not e.is_dir, e.name))
        return entries, truncated

    async def find(
        self, environment_id: str, root: str, pattern: str, *, user: str | None, limit: int
    ) -> tuple[list[FileInfo], bool]:
        info = await self._resolve(environment_id, root)
        if info.type is not FileType.DIRECTORY:
            raise InvalidRequest(f"{root} is not a directory")
        test = ["-path", f"{root.rstrip('/')}/{pattern}"] if "/" in pattern else ["-name", pattern]
        count = str((limit + 1) * len(_FIELDS))
        script = f'FMT="$1" COUNT="$2"; shift 2; {_FIND_SH}'
        argv = ["/bin/sh", "-c", script, "sh", _PRINTF, count, root, *test]
        return await self._find(environment_id, argv, user, limit)

    async def _tool(self, environment_id: str, argv: list[str], user: str | None) -> None:
        code, _, err = await self._runner.run_helper(environment_id, argv, user=user)
        if code != 0:
            raise _tool_error(argv[-1], err)

    async def mkdir(self, environment_id: str, path: str, *, mode: str, user: str | None) -> None:
        await self._tool(environment_id, ["mkdir", "-p", "-m", mode, "--", path], user)

    async def move(
        self, environment_id: str, source: str, destination: str, *, user: str | None
    ) -> None:
        await self._tool(environment_id, ["mv", "-f", "--", source, destination], user)

    async def remove(
        self, environment_id: str, path: str, *, recursive: bool, user: str | None
    ) -> None:
        if recursive:
            argv = ["rm", "-rf", "--", path]
        else:
            info = await self.stat(environment_id, path)
            argv = ["rmdir", "--", path] if info.is_dir else ["rm", "-f", "--", path]
        await self._tool(environment_id, argv, user)
