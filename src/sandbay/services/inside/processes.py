"""Background processes (Daytona's session commands, E2B's background commands): held
by this server process, with the tail of their output in bounded buffers. They end
with their environment's workload; a server restart ends (kills) them too, since
their output had nowhere else to go."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sandbay.domain import ids
from sandbay.domain.environments import Event
from sandbay.domain.errors import Conflict, NotFound, SandbayError
from sandbay.domain.exec import (
    Process,
    ProcessOutput,
    ProcessSpec,
    ProcessStart,
    ProcessStatus,
    command_argv,
)
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.runtime.inside import ProcessHandle, ProcessRunner
from sandbay.services.environments.activity import ActivityHolds

log = logging.getLogger(__name__)
PROCESS = "proc"


class OutputBuffer:
    """The last `limit` bytes of a stream, addressed by absolute byte offsets."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    def append(self, chunk: bytes) -> None:
        self.data += chunk
        overflow = len(self.data) - self.limit
        if overflow > 0:
            del self.data[:overflow]
            self.start += overflow

    def read(self, offset: int) -> tuple[bytes, bool]:
        """Bytes from `offset` on, and whether older ones were dropped before it."""
        dropped = offset < self.start
        begin = max(offset, self.start) - self.start
        return bytes(self.data[begin:]), dropped


@dataclass
class ProcessEntry:
    id: str
    environment_id: str
    start: ProcessStart
    user: str | None
    handle: ProcessHandle
    stdout: OutputBuffer
    stderr: OutputBuffer
    started_at: datetime
    stdin_open: bool
    ended_at: datetime | None = None
    exit_code: int | None = None
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def view(self) -> Process:
        return Process(
            id=self.id,
            environment_id=self.environment_id,
            command=self.start.command,
            cwd=self.start.cwd,
            user=self.user,
            status=ProcessStatus.RUNNING if self.running else ProcessStatus.EXITED,
            pid=self.handle.pid,
            exit_code=self.exit_code,
            stdin_open=self.stdin_open and self.running,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )

    def output(self, stdout_offset: int, stderr_offset: int) -> ProcessOutput:
        out, dropped_out = self.stdout.read(stdout_offset)
        err, dropped_err = self.stderr.read(stderr_offset)
        return ProcessOutput(
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            stdout_next_offset=self.stdout.end,
            stderr_next_offset=self.stderr.end,
            dropped=dropped_out or dropped_err,
            status=ProcessStatus.RUNNING if self.running else ProcessStatus.EXITED,
            exit_code=self.exit_code,
        )


class ProcessRegistry:
    """Every background process this server started, by environment."""

    def __init__(
        self,
        runner: ProcessRunner,
        *,
        output_limit: int,
        keep_exited: int,
        holds: ActivityHolds,
    ) -> None:
        self._runner = runner
        self._holds = holds
        self._output_limit = output_limit
        self._keep_exited = keep_exited
        self._by_env: dict[str, dict[str, ProcessEntry]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        environment_id: str,
        body: ProcessStart,
        *,
        user: str | None,
        env: dict[str, str] | None = None,
        unset: tuple[str, ...] = (),
    ) -> ProcessEntry:
        spec = ProcessSpec(
            argv=command_argv(body.command),
            env={**(env or {}), **body.env},
            unset=unset,
            cwd=body.cwd,
            user=user,
            stdin=body.stdin,
        )
        handle = await self._runner.spawn(environment_id, spec)
        entry = ProcessEntry(
            id=ids.new_id(PROCESS),
            environment_id=environment_id,
            start=body,
            user=user,
            handle=handle,
            stdout=OutputBuffer(self._output_limit),
            stderr=OutputBuffer(self._output_limit),
            started_at=utcnow(),
            stdin_open=body.stdin,
        )
        self._by_env.setdefault(environment_id, {})[entry.id] = entry
        task = asyncio.create_task(self._drain(entry), name=f"process {entry.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(TimeoutError):  # answer with its pid when it has one
            await asyncio.wait_for(handle.started(), 5)
        return entry

    async def _drain(self, entry: ProcessEntry) -> None:
        with self._holds.hold(entry.environment_id):  # a running process is activity
            await self._drain_held(entry)

    async def _drain_held(self, entry: ProcessEntry) -> None:
        try:
            async for chunk in entry.handle.output():
                (entry.stdout if chunk.stream == "stdout" else entry.stderr).append(chunk.data)
                entry.notify()
            entry.exit_code = await entry.handle.wait()
        except SandbayError as exc:  # it could not start: say why where output goes
            entry.stderr.append(exc.message.encode())
        except Exception:
            log.exception("process %s failed", entry.id)
        finally:
            entry.ended_at = utcnow()
            with contextlib.suppress(Exception):
                await entry.handle.close()
            entry.drained.set()
            entry.notify()
            self._forget_old(entry.environment_id)

    def _forget_old(self, environment_id: str) -> None:
        entries = self._by_env.get(environment_id, {})
        exited = sorted((e for e in entries.values() if not e.running), key=lambda e: e.started_at)
        for entry in exited[: max(0, len(exited) - self._keep_exited)]:
            entries.pop(entry.id, None)

    def list(self, environment_id: str) -> list[ProcessEntry]:
        return sorted(self._by_env.get(environment_id, {}).values(), key=lambda e: e.id)

    def get(self, environment_id: str, process_id: str) -> ProcessEntry:
        entry = self._by_env.get(environment_id, {}).get(process_id)
        if entry is None:
            raise NotFound(f"process {process_id!r} not found")
        return entry

    async def write(self, entry: ProcessEntry, data: bytes, *, eof: bool) -> None:
        if not entry.running or not entry.stdin_open:
            raise Conflict("the process's standard input is not open")
        if data:
            await entry.handle.write(data)
        if eof:
            entry.stdin_open = False
            await entry.handle.close_stdin()

    async def signal(self, entry: ProcessEntry, signal: str) -> None:
        if entry.running:
            await entry.handle.signal(signal)

    async def remove(self, entry: ProcessEntry) -> None:
        """Kill it (with its whole tree) if it runs, and forget it."""
        if entry.running:
            await entry.handle.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.drained.wait(), 10)
        self._by_env.get(entry.environment_id, {}).pop(entry.id, None)

    def on_event(self, event: Event) -> None:
        """Bus listener: a deleted environment's processes are forgotten."""
        if event.environment_id and event.to_state == EnvState.DELETED:
            self._by_env.pop(event.environment_id, None)

    async def close(self) -> None:
        """Server shutdown: kill what still runs (nobody could read its output)."""
        running = [e for entries in self._by_env.values() for e in entries.values() if e.running]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(e.handle.kill() for e in running), return_exceptions=True), 15
            )
        for task in list(self._tasks):
            task.cancel()
        self._by_env.clear()
