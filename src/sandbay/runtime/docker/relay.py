"""Reaching a TCP port inside a Docker container without publishing it: a tiny
python3 relay runs in the container through exec (so it sits in the container's own
network namespace, under its network policy), connects to 127.0.0.1:PORT, and
bridges the socket to its stdin and stdout, which are the attached exec stream.
Any port works, nothing is exposed on the host, and the environment need not be
reachable over the Docker bridge. The SSH gateway's `-L` forwarding and the preview
proxy both use it."""

import asyncio
import contextlib
import logging

from sandbay.domain.errors import PortUnreachable, SandbayError
from sandbay.domain.exec import ProcessSpec
from sandbay.runtime.docker.exec import DockerExec, DockerProcess

log = logging.getLogger(__name__)

#: Connects, says "+" on stdout, then copies both ways; stdin's end is a half-close.
RELAY = r"""
import errno, os, socket, sys, threading
s, err = None, None
try:
    addrs = socket.getaddrinfo(sys.argv[1], int(sys.argv[2]), type=socket.SOCK_STREAM)
except OSError as e:
    addrs, err = [], e
for family, kind, proto, _, addr in addrs:
    s = socket.socket(family, kind, proto)
    s.settimeout(10)
    try:
        s.connect(addr)
        break
    except OSError as e:
        s.close(); s = None
        if err is None or e.errno == errno.ECONNREFUSED:
            err = e  # "refused" says more than ::1's "cannot assign address"
if s is None:
    sys.stderr.write("%s\n" % (getattr(err, "strerror", None) or err)); sys.exit(2)
s.settimeout(None)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
os.write(1, b"+\n")
def up():
    try:
        while True:
            d = os.read(0, 65536)
            if not d:
                break
            s.sendall(d)
    except OSError:
        pass
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=up, daemon=True).start()
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        while d:
            d = d[os.write(1, d):]
except OSError:
    pass
"""
_STDERR_LIMIT = 4096
_QUEUE_CHUNKS = 16
_EXIT_GRACE_S = 2.0
#: Close tasks still running (kept referenced until they end).
_BACKGROUND: set[asyncio.Task[None]] = set()


class ExecStream:
    """`ByteStream` over one attached exec: stdin in, stdout out; stderr is kept
    apart (it explains a failure). A task of its own reads the exec's output, so a
    cancelled reader never tears the exec's output iterator down."""

    def __init__(self, handle: DockerProcess) -> None:
        self.handle = handle
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self.stderr = bytearray()
        self._reader = asyncio.create_task(self._read_all(), name="exec stream")

    async def _read_all(self) -> None:
        try:
            async for chunk in self.handle.output():
                if chunk.stream == "stderr":
                    if len(self.stderr) < _STDERR_LIMIT:
                        self.stderr += chunk.data
                elif not self._closed:
                    await self._queue.put(chunk.data)
        finally:
            if not self._closed:
                await self._queue.put(None)

    async def _fill(self) -> bool:
        """Read the next stdout chunk into the buffer; False at the end."""
        if self._eof:
            return False
        data = await self._queue.get()
        if data is None:
            self._eof = True
            return False
        self._buffer += data
        return True

    async def read(self, limit: int) -> bytes:
        while not self._buffer and await self._fill():
            pass
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    async def readexactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise asyncio.IncompleteReadError(bytes(self._buffer), size)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def readline(self) -> bytes:
        while b"\n" not in self._buffer:
            if not await self._fill():
                break
        line, sep, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line + sep

    async def write(self, data: bytes) -> None:
        await self.handle.write(data)

    async def write_eof(self) -> None:
        await self.handle.close_stdin()

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    @property
    def ended(self) -> bool:
        """True once the helper's output has ended (it exited)."""
        return self._reader.done()

    async def close(self) -> None:
        """Close our end; a helper still running a moment later is killed (in the
        background: the caller does not wait for the engine)."""
        if self._closed:
            return
        self._closed = True
        while not self._queue.empty():  # unblock the reader: what is left is dropped
            self._queue.get_nowait()
        with contextlib.suppress(Exception):
            await self.handle.close_stdin()
        task = asyncio.create_task(self._finish(), name="exec stream close")
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _finish(self) -> None:
        done, _ = await asyncio.wait({self._reader}, timeout=_EXIT_GRACE_S)
        try:
            if not done:
                await self.handle.kill()
        except SandbayError:
            pass  # the environment stopped: nothing is left to kill
        except Exception:
            log.exception("could not end an exec helper")
        finally:
            self._reader.cancel()
            await self.handle.close()


class DockerPortRelay:
    """`PortConnector` through exec (see the module docstring)."""

    def __init__(self, runner: DockerExec) -> None:
        self._runner = runner

    async def connect(
        self, environment_id: str, port: int, *, host: str = "127.0.0.1", user: str | None = None
    ) -> ExecStream:
        spec = ProcessSpec(
            argv=["python3", "-c", RELAY, host, str(port)], user=user, stdin=True, tracked=True
        )
        handle = await self._runner.spawn(environment_id, spec)
        stream = ExecStream(handle)
        try:
            ready = await stream.readline()
        except BaseException:
            await stream.close()
            raise
        if ready != b"+\n":
            await stream.close()
            reason = stream.stderr.decode(errors="replace").strip().splitlines()
            why = reason[-1] if reason else "the relay could not start (is python3 installed?)"
            raise PortUnreachable(f"cannot connect to {host}:{port} inside the environment: {why}")
        return stream
