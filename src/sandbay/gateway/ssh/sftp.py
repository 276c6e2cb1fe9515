"""SFTP (and scp, which modern OpenSSH speaks over SFTP; asyncssh serves the legacy
scp protocol on top of this too) over an environment's files: asyncssh speaks the
protocol, each operation is run inside the environment by the runtime's file agent
(as the environment's user, relative paths against /workspace)."""

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
from asyncssh import SFTPAttrs, SFTPName, SFTPVFSAttrs

from sandbay.runtime.access import FileSession


def _attrs(raw: dict[str, Any]) -> SFTPAttrs:
    return SFTPAttrs(
        size=raw["size"],
        uid=raw["uid"],
        gid=raw["gid"],
        permissions=raw["mode"],
        atime=raw["atime"],
        mtime=raw["mtime"],
        nlink=raw["nlink"],
    )


def _wire(attrs: SFTPAttrs) -> dict[str, Any]:
    return {
        "size": attrs.size,
        "uid": attrs.uid,
        "gid": attrs.gid,
        "mode": attrs.permissions,
        "atime": attrs.atime,
        "mtime": attrs.mtime,
    }


def _path(value: bytes) -> str:
    return value.decode("latin-1")


def _open_flags(pflags: int) -> int:
    if pflags & asyncssh.FXF_READ and pflags & asyncssh.FXF_WRITE:
        flags = os.O_RDWR
    elif pflags & asyncssh.FXF_WRITE:
        flags = os.O_WRONLY
    else:
        flags = os.O_RDONLY
    for bit, flag in (
        (asyncssh.FXF_APPEND, os.O_APPEND),
        (asyncssh.FXF_CREAT, os.O_CREAT),
        (asyncssh.FXF_TRUNC, os.O_TRUNC),
        (asyncssh.FXF_EXCL, os.O_EXCL),
    ):
        if pflags & bit:
            flags |= flag
    return flags


class EnvironmentSFTP(asyncssh.SFTPServer):
    """One SFTP session; file handles are the agent's file descriptors."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], files: FileSession) -> None:
        super().__init__(chan)
        self._files = files

    async def _call(self, op: str, *args: Any, data: bytes = b"") -> Any:
        result, _ = await self._files.call(op, *args, data=data)
        return result

    def format_user(self, uid: int | None) -> str:
        return str(uid) if uid is not None else "?"  # the host's names mean nothing inside

    def format_group(self, gid: int | None) -> str:
        return str(gid) if gid is not None else "?"

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        mode = 0o666 if attrs.permissions is None else attrs.permissions & 0o7777
        return await self._call("open", _path(path), _open_flags(pflags), mode)

    async def close(self, file_obj: object) -> None:
        await self._call("close", file_obj)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        _, data = await self._files.call("read", file_obj, offset, size)
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        await self._call("write", file_obj, offset, data=data)
        return len(data)

    async def lstat(self, path: bytes) -> SFTPAttrs:
        return _attrs(await self._call("lstat", _path(path)))

    async def stat(self, path: bytes) -> SFTPAttrs:
        return _attrs(await self._call("stat", _path(path)))

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        return _attrs(await self._call("fstat", file_obj))

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._call("setstat", _path(path), _wire(attrs))

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        await self._call("fsetstat", file_obj, _wire(attrs))

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        for name, raw in await self._call("scandir", _path(path)):
            yield SFTPName(name.encode("latin-1"), attrs=_attrs(raw))

    async def remove(self, path: bytes) -> None:
        await self._call("remove", _path(path))

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        mode = 0o777 if attrs.permissions is None else attrs.permissions & 0o7777
        await self._call("mkdir", _path(path), mode)

    async def rmdir(self, path: bytes) -> None:
        await self._call("rmdir", _path(path))

    async def realpath(self, path: bytes) -> bytes:
        return str(await self._call("realpath", _path(path) or ".")).encode("latin-1")

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._call("rename", _path(oldpath), _path(newpath))

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._call("posix_rename", _path(oldpath), _path(newpath))

    async def readlink(self, path: bytes) -> bytes:
        return str(await self._call("readlink", _path(path))).encode("latin-1")

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        await self._call("symlink", _path(oldpath), _path(newpath))

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        await self._call("link", _path(oldpath), _path(newpath))

    async def statvfs(self, path: bytes) -> SFTPVFSAttrs:
        return SFTPVFSAttrs(*await self._call("statvfs", _path(path)))

    async def fstatvfs(self, file_obj: object) -> SFTPVFSAttrs:
        return SFTPVFSAttrs(*await self._call("fstatvfs", file_obj))

    async def fsync(self, file_obj: object) -> None:
        await self._call("fsync", file_obj)

    async def exit(self) -> None:
        await self._files.close()
        # OpenSSH's scp (SFTP mode) exits 1 unless the subsystem reports its status.
        with contextlib.suppress(Exception):
            self.channel.exit(0)
