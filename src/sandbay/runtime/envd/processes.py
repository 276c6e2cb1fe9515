"""Processes inside an environment through its agent: one switched connection per
process carries its output, exit and controls as frames (docs/envd.md). The agent
starts each process as a session leader marked with its id, so signals and kills
reach its whole tree, children that left the session included."""

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from sandbay.domain.errors import Conflict, InvalidRequest
from sandbay.domain.exec import OutputChunk, ProcessSpec
from sandbay.runtime.envd.channel import Channel, Stream

_HEAD = struct.Struct(">BI")
STDIN, STDOUT, STDERR, EXIT, STARTED, CLOSE_STDIN, SIGNAL, RESIZE, KILL = range(9)
_QUEUE_CHUNKS = 64
_KILL_GRACE_S = 3.0


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEAD.pack(kind, len(payload)) + payload


class EnvdProcess:
    """`ProcessHandle` over one process stream."""

    def __init__(self, stream: Stream, spec: ProcessSpec) -> None:
        self._stream = stream
        self._spec = spec
        self._pid: int | None = None
        self._process_id: str | None = None
        self._offset = 0
        self._exit: dict[str, Any] | None = None
        self._started = asyncio.Event()
        self._queue: asyncio.Queue[OutputChunk | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._send_lock = asyncio.Lock()
        self._pump_task = asyncio.create_task(self._pump(), name="envd process")

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def process_id(self) -> str | None:
        return self._process_id

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def spec(self) -> ProcessSpec:
        return self._spec

    async def _pump(self) -> None:
        try:
            while True:
                kind, size = _HEAD.unpack(await self._stream.readexactly(_HEAD.size))
                payload = await self._stream.readexactly(size) if size else b""
                if kind == STDOUT:
                    await self._queue.put(OutputChunk("stdout", payload))
                elif kind == STDERR:
                    await self._queue.put(OutputChunk("stderr", payload))
                elif kind == STARTED:
                    started = json.loads(payload)
                    self._pid, self._process_id = started.get("pid"), started.get("id")
                    self._offset = int(started.get("offset") or 0)
                    self._started.set()
                elif kind == EXIT:
                    self._exit = json.loads(payload)
                    break
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            self._started.set()
            self._stream.close()
        await self._queue.put(None)  # not reached when cancelled: `close` wakes the reader

    async def started(self) -> int | None:
        await self._started.wait()
        return self._pid

    async def output(self) -> AsyncIterator[OutputChunk]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def _send(self, kind: int, payload: bytes = b"") -> None:
        async with self._send_lock:
            await self._stream.write(frame(kind, payload))

    async def write(self, data: bytes) -> None:
        if self._pump_task.done() or self._stream.writer.is_closing():
            raise Conflict("the process's standard input is closed")
        try:
            await self._send(STDIN, data)
        except OSError as exc:
            raise Conflict("the process's standard input is closed") from exc

    async def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            if not self._pump_task.done():
                await self._send(CLOSE_STDIN)

    async def signal(self, signal: str) -> None:
        with contextlib.suppress(OSError):
            if not self._pump_task.done():
                await self._send(SIGNAL, signal.encode())

    async def kill(self) -> None:
        with contextlib.suppress(OSError):
            if not self._pump_task.done():
                await self._send(KILL)
        # Whatever still holds the output open must not keep the caller waiting.
        done, _ = await asyncio.wait({self._pump_task}, timeout=_KILL_GRACE_S)
        if not done:
            self._stream.writer.transport.abort()

    async def resize(self, cols: int, rows: int) -> None:
        if self._spec.tty and not self._pump_task.done():
            with contextlib.suppress(OSError):
                await self._send(RESIZE, json.dumps({"cols": cols, "rows": rows}).encode())

    async def wait(self) -> int | None:
        await asyncio.wait({self._pump_task})
        if self._exit is None:
            return None
        code = self._exit.get("exit_code")
        return None if code is None else int(code)

    async def close(self) -> None:
        self._stream.close()
        if not self._pump_task.done():
            self._pump_task.cancel()
            await asyncio.wait({self._pump_task})
            # Wake a reader, dropping output nobody will read any more.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)


class UnstartedProcess:
    """`ProcessHandle` of a command the agent could not start (bad cwd, unknown user,
    no such executable): it never runs, and waiting for it says why."""

    pid = None
    process_id = None
    offset = 0

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def started(self) -> int | None:
        return None

    async def output(self) -> AsyncIterator[OutputChunk]:
        return
        yield  # pragma: no cover

    async def write(self, data: bytes) -> None:
        raise Conflict("the process's standard input is closed")

    async def close_stdin(self) -> None:
        pass

    async def signal(self, signal: str) -> None:
        pass

    async def kill(self) -> None:
        pass

    async def resize(self, cols: int, rows: int) -> None:
        pass

    async def wait(self) -> int | None:
        raise InvalidRequest(f"cannot start the command: {self.reason}")

    async def close(self) -> None:
        pass


class EnvdRunner:
    """`ProcessRunner` through the environment's agent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def spawn(self, environment_id: str, spec: ProcessSpec) -> EnvdProcess | UnstartedProcess:
        body = {
            "argv": list(spec.argv),
            "env": dict(spec.env),
            "unset": list(spec.unset),
            "cwd": spec.cwd,
            "user": spec.user or "",
            "tty": spec.tty,
            "stdin": spec.stdin,
            "keep": spec.keep,
        }
        try:
            stream = await self._channel.upgrade(
                environment_id, "POST", "/v1/processes", json_body=body
            )
        except InvalidRequest as exc:
            return UnstartedProcess(exc.message)
        return EnvdProcess(stream, spec)

    async def attach(self, environment_id: str, process_id: str, *, offset: int = 0) -> EnvdProcess:
        stream = await self._channel.upgrade(
            environment_id,
            "GET",
            f"/v1/processes/{quote(process_id, safe='')}/attach",
            params={"offset": offset},
        )
        return EnvdProcess(stream, ProcessSpec(argv=[], tty=True, stdin=True, keep=True))
