"""Processes inside a Docker container through the exec API, attached over a raw
connection (stdin with half-close, output frames read as they come, back-pressure
through a small queue). Docker cannot signal an exec (moby/moby#9098), so each
tracked process is started through a one-line wrapper that prints its pid (the
engine starts every exec as a session leader) and carries a marker variable; a
second exec then signals the session and every process carrying the marker, which
covers children that left the session."""

import asyncio
import contextlib
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from docker.errors import APIError

from sandbay.domain.errors import Conflict, InvalidRequest
from sandbay.domain.exec import OutputChunk, ProcessSpec
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.provider import container_name

MARK = "SANDBAY_PROCESS"
#: Prints its pid, then becomes the command (same pid, same session).
_WRAPPER = 'echo "$$"; exec "$@"'
#: Signals every process of session $1 (if > 1) and every process whose environment
#: holds $2=$3, in up to $5 rounds (a process forking meanwhile is caught next round).
_SIGNAL_SCRIPT = r"""
sid=$1 mark="$2=$3" sig=$4 rounds=$5
while [ "$rounds" -gt 0 ]; do
  rounds=$((rounds - 1)); found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    read -r s 2>/dev/null < "$d/stat" || continue
    s=${s##*) }
    set -- $s
    if [ "$sid" -gt 1 ] && [ "$4" = "$sid" ]; then found="$found $p"
    elif grep -qaF "$mark" "$d/environ" 2>/dev/null; then found="$found $p"; fi
  done
  [ -n "$found" ] || exit 0
  # The session leader first: /proc is listed in text order (100 before 98), and a
  # shell whose children die first would exit 0 before its own signal arrives.
  [ "$sid" -gt 1 ] && kill -s "$sig" "$sid" 2>/dev/null
  kill -s "$sig" $found 2>/dev/null
  [ "$rounds" -gt 0 ] && sleep 0.05
done
exit 0
"""
_HEADER = struct.Struct(">BxxxL")
_STREAMS = {1: "stdout", 2: "stderr"}
_QUEUE_CHUNKS = 64
_KILL_GRACE_S = 3.0
_HELPER_OUTPUT_LIMIT = 32 * 1024 * 1024


class DockerProcess:
    """`ProcessHandle` for one attached exec."""

    def __init__(
        self,
        runner: "DockerExec",
        environment_id: str,
        exec_id: str,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        spec: ProcessSpec,
        mark: str,
    ) -> None:
        self._runner = runner
        self._environment_id = environment_id
        self._exec_id = exec_id
        self._reader, self._writer = streams
        self._spec = spec
        self._mark = mark
        self._pid: int | None = None
        self._awaiting_pid = spec.tracked
        self._head = b""
        self._held: list[OutputChunk] = []
        self._started = asyncio.Event()
        if not spec.tracked:
            self._started.set()
        self.failure: str | None = None
        self._queue: asyncio.Queue[OutputChunk | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._pump_task = asyncio.create_task(self._pump(), name=f"exec {exec_id[:12]}")

    @property
    def pid(self) -> int | None:
        return self._pid

    # ---- output ------------------------------------------------------------------------

    async def _emit(self, stream: str, data: bytes) -> None:
        if self._awaiting_pid:
            # The wrapper's first line is its pid; anything else is the engine saying
            # why the command could not start (bad cwd, unknown user, no /bin/sh).
            # Stderr that races ahead of that line is held back until it comes.
            if stream != "stdout":
                self._held.append(OutputChunk("stderr", data))
                return
            if len(self._head) < 4096:
                self._head += data
            line, sep, rest = self._head.partition(b"\n")
            if not sep or not line.strip().isdigit():
                return
            self._awaiting_pid, self._pid, data = False, int(line.strip()), rest
            self._started.set()
            for held in self._held:
                await self._queue.put(held)
            self._held.clear()
        if data:
            await self._queue.put(OutputChunk("stdout" if stream == "stdout" else "stderr", data))

    async def _pump(self) -> None:
        try:
            if self._spec.tty:
                while chunk := await self._reader.read(65536):
                    await self._emit("stdout", chunk)
            else:
                while True:
                    kind, size = _HEADER.unpack(await self._reader.readexactly(8))
                    payload = await self._reader.readexactly(size) if size else b""
                    await self._emit(_STREAMS.get(kind, "stdout"), payload)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if self._awaiting_pid:
                # The wrapper never ran: what came is the engine's reason (bad cwd, user…).
                text = self._head + b"".join(c.data for c in self._held)
                self.failure = text.decode(errors="replace").strip() or "exec failed"
            self._writer.close()
            self._started.set()
        await self._queue.put(None)  # not reached when cancelled: `close` wakes the reader

    async def started(self) -> int | None:
        await self._started.wait()
        return self._pid

    async def output(self) -> AsyncIterator[OutputChunk]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    # ---- input and control ----------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise Conflict("the process's standard input is closed")
        self._writer.write(data)
        await self._writer.drain()

    async def close_stdin(self) -> None:
        if not self._writer.is_closing() and self._writer.can_write_eof():
            with contextlib.suppress(OSError):
                self._writer.write_eof()

    async def signal(self, signal: str) -> None:
        await self._runner.signal_tree(self._environment_id, self, signal, rounds=1)

    async def kill(self) -> None:
        await self._runner.signal_tree(self._environment_id, self, "KILL", rounds=3)
        # Whatever still holds the output open (a process that escaped both the session
        # and the marker) must not keep the caller waiting.
        done, _ = await asyncio.wait({self._pump_task}, timeout=_KILL_GRACE_S)
        if not done:
            self._writer.transport.abort()

    async def resize(self, cols: int, rows: int) -> None:
        if self._spec.tty:
            engine = self._runner.engine
            await engine.run(engine.api.exec_resize, self._exec_id, height=rows, width=cols)

    async def wait(self) -> int | None:
        await asyncio.wait({self._pump_task})
        if self.failure is not None:
            raise InvalidRequest(f"cannot start the command: {self.failure}")
        engine = self._runner.engine
        deadline = time.monotonic() + 5
        while True:  # the engine records the exit a moment after the output ends
            info: dict[str, Any] = await engine.run(engine.api.exec_inspect, self._exec_id)
            if not info.get("Running") or time.monotonic() > deadline:
                code = info.get("ExitCode")
                return None if info.get("Running") or code is None else int(code)
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._writer.close()
        if not self._pump_task.done():
            self._pump_task.cancel()
            await asyncio.wait({self._pump_task})
            # Wake a reader, dropping output nobody will read any more.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    @property
    def spec(self) -> ProcessSpec:
        return self._spec

    @property
    def mark(self) -> str:
        return self._mark


class DockerExec:
    """`ProcessRunner` over the Docker exec API."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _create(self, environment_id: str, argv: list[str], spec: ProcessSpec, env: Any) -> str:
        try:
            created = self.engine.api.exec_create(
                container_name(environment_id),
                argv,
                stdout=True,
                stderr=True,
                stdin=spec.stdin,
                tty=spec.tty,
                environment=env,
                workdir=spec.cwd,
                user=spec.user or "",
            )
        except APIError as exc:
            if exc.status_code == 409:
                raise Conflict("the environment's workload is not running") from exc
            raise
        return str(created["Id"])

    async def spawn(self, environment_id: str, spec: ProcessSpec) -> DockerProcess:
        mark = uuid.uuid4().hex
        env = dict(spec.env)
        argv = list(spec.argv)
        if spec.tracked:
            env[MARK] = mark
            argv = ["/bin/sh", "-c", _WRAPPER, "sh", *argv]
        exec_id = await self.engine.run(self._create, environment_id, argv, spec, env)
        streams = await self.engine.hijack(
            f"/exec/{exec_id}/start", {"Detach": False, "Tty": spec.tty}
        )
        return DockerProcess(self, environment_id, exec_id, streams, spec, mark)

    async def run_helper(
        self, environment_id: str, argv: list[str], *, user: str | None
    ) -> tuple[int | None, bytes, bytes]:
        """Run one of the platform's own short commands and collect its output."""
        proc = await self.spawn(environment_id, ProcessSpec(argv=argv, user=user, tracked=False))
        out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        async for chunk in proc.output():
            buf = out[chunk.stream]
            if len(buf) < _HELPER_OUTPUT_LIMIT:
                buf += chunk.data
        code = await proc.wait()
        return code, bytes(out["stdout"]), bytes(out["stderr"])

    async def signal_tree(
        self, environment_id: str, proc: DockerProcess, signal: str, *, rounds: int
    ) -> None:
        sig = signal.removeprefix("SIG")
        argv = ["/bin/sh", "-c", _SIGNAL_SCRIPT, "sh"]
        argv += [str(proc.pid or 0), MARK, proc.mark, sig, str(rounds)]
        # As the process's own user: reading another user's /proc/*/environ needs
        # CAP_SYS_PTRACE, which environments do not have.
        with contextlib.suppress(Conflict):  # the workload stopped: nothing left to signal
            await self.run_helper(environment_id, argv, user=proc.spec.user)
