"""File operations inside a Docker container for SFTP and scp: a small python3
agent runs in the container through exec, as the session's user, and answers POSIX
operations (open, pread, pwrite, stat, listdir, rename, …) over its stdin and
stdout. Paths resolve inside the container's own root (symlinks included) with the
user's own permissions, relative paths against /workspace, and random access works,
which the archive API cannot give.

Frames both ways: 4-byte header length, 4-byte payload length, a JSON header, the
payload. Paths and names travel as latin-1 strings of their raw bytes (a bijection),
so any byte sequence survives JSON."""

import asyncio
import json
import struct
from typing import Any

from sandbay.domain.errors import RuntimeFailure
from sandbay.domain.exec import ProcessSpec
from sandbay.runtime.docker.exec import DockerExec
from sandbay.runtime.docker.relay import ExecStream

AGENT = r"""
import json, os, struct, sys
R, W = sys.stdin.buffer, sys.stdout.buffer
H = struct.Struct(">II")
def P(s): return s.encode("latin-1")
def N(b): return b.decode("latin-1")
def st(s):
    return {"size": s.st_size, "uid": s.st_uid, "gid": s.st_gid, "mode": s.st_mode,
            "atime": int(s.st_atime), "mtime": int(s.st_mtime), "nlink": s.st_nlink}
def setattrs(target, a, fd=False):
    if a.get("size") is not None:
        os.truncate(target, a["size"])
    if a.get("uid") is not None and a.get("gid") is not None:
        os.chown(target, a["uid"], a["gid"])
    if a.get("mode") is not None:
        os.chmod(target, a["mode"] & 0o7777)
    if a.get("atime") is not None and a.get("mtime") is not None:
        os.utime(target, (a["atime"], a["mtime"]))
def scan(p):
    out = []
    for n in (b".", b".."):
        out.append([N(n), st(os.lstat(os.path.join(p, n)))])
    with os.scandir(p) as it:
        for e in it:
            try:
                out.append([N(e.name), st(e.stat(follow_symlinks=False))])
            except OSError:
                pass
    return out
def rename(a, b):
    if os.path.lexists(b):
        raise FileExistsError(17, "File exists")
    os.rename(a, b)
def write(fd, off, data):
    while data:
        n = os.pwrite(fd, data, off); data = data[n:]; off += n
def vfs(s):
    return [s.f_bsize, s.f_frsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files,
            s.f_ffree, s.f_favail, s.f_fsid if hasattr(s, "f_fsid") else 0, s.f_flag,
            s.f_namemax]
OPS = {
    "open": lambda p, f, m: os.open(P(p), f, m),
    "close": lambda fd: os.close(fd),
    "read": None,
    "write": None,
    "stat": lambda p: st(os.stat(P(p))),
    "lstat": lambda p: st(os.lstat(P(p))),
    "fstat": lambda fd: st(os.fstat(fd)),
    "setstat": lambda p, a: setattrs(P(p), a),
    "fsetstat": lambda fd, a: setattrs(fd, a),
    "scandir": lambda p: scan(P(p)),
    "remove": lambda p: os.unlink(P(p)),
    "mkdir": lambda p, m: os.mkdir(P(p), m),
    "rmdir": lambda p: os.rmdir(P(p)),
    "realpath": lambda p: N(os.path.realpath(P(p))),
    "rename": lambda a, b: rename(P(a), P(b)),
    "posix_rename": lambda a, b: os.replace(P(a), P(b)),
    "readlink": lambda p: N(os.readlink(P(p))),
    "symlink": lambda a, b: os.symlink(P(a), P(b)),
    "link": lambda a, b: os.link(P(a), P(b)),
    "statvfs": lambda p: vfs(os.statvfs(P(p))),
    "fstatvfs": lambda fd: vfs(os.fstatvfs(fd)),
    "fsync": lambda fd: os.fsync(fd),
}
def exact(n):
    b = R.read(n)
    if len(b) < n:
        sys.exit(0)
    return b
W.write(b"+\n"); W.flush()
while True:
    hl, pl = H.unpack(exact(8))
    req = json.loads(exact(hl)); data = exact(pl) if pl else b""
    op, args, out = req["op"], req["args"], b""
    try:
        if op == "read":
            out = os.pread(args[0], args[2], args[1]); res = None
        elif op == "write":
            res = write(args[0], args[1], data)
        else:
            res = OPS[op](*args)
        head = {"ok": res}
    except OSError as e:
        head = {"errno": e.errno or 5, "error": e.strerror or str(e)}
    except Exception as e:
        head = {"errno": 5, "error": str(e)}
    h = json.dumps(head).encode()
    W.write(H.pack(len(h), len(out)) + h + out); W.flush()
"""
_FRAME = struct.Struct(">II")
_MAX_HEADER = 64 * 1024 * 1024


class DockerFileSession:
    """`FileSession` over one agent exec; one operation at a time."""

    def __init__(self, stream: ExecStream) -> None:
        self._stream = stream
        self._lock = asyncio.Lock()

    async def call(self, op: str, *args: Any, data: bytes = b"") -> tuple[Any, bytes]:
        head = json.dumps({"op": op, "args": list(args)}).encode()
        async with self._lock:
            try:
                await self._stream.write(_FRAME.pack(len(head), len(data)) + head + data)
                head_len, payload_len = _FRAME.unpack(await self._stream.readexactly(8))
                if head_len > _MAX_HEADER:
                    raise RuntimeFailure("the file agent sent a malformed answer")
                answer = json.loads(await self._stream.readexactly(head_len))
                payload = await self._stream.readexactly(payload_len) if payload_len else b""
            except (asyncio.IncompleteReadError, ValueError) as exc:
                raise OSError(5, "the file agent ended (did the environment stop?)") from exc
        if "errno" in answer:
            raise OSError(int(answer["errno"]), str(answer["error"]))
        return answer["ok"], payload

    async def close(self) -> None:
        await self._stream.close()


class DockerFileAgent:
    """`FileAgent` through exec (see the module docstring)."""

    def __init__(self, runner: DockerExec) -> None:
        self._runner = runner

    async def open_session(self, environment_id: str, *, user: str | None) -> DockerFileSession:
        spec = ProcessSpec(
            argv=["python3", "-c", AGENT],
            user=user,
            cwd="/workspace",
            stdin=True,
            tracked=True,
        )
        stream = ExecStream(await self._runner.spawn(environment_id, spec))
        if await stream.readline() != b"+\n":
            await stream.close()
            why = stream.stderr.decode(errors="replace").strip() or "is python3 installed?"
            raise RuntimeFailure(f"cannot start the file agent in the environment: {why}")
        return DockerFileSession(stream)
