"""Code interpreter contexts (Daytona's `code_interpreter`): one long-lived python3 per
context inside the environment, running `interpreter_driver`, held by this server
process by environment. A context's cells run one at a time, in order, in one
namespace, so variables, imports and the cwd survive between them; a cell keeps
running when its caller goes away (as Daytona's do). A timeout interrupts the cell
(SIGINT, a KeyboardInterrupt inside) and the context lives on; a cell that ignores
the interrupt is killed with its context, which starts afresh on its next cell, as
does a context whose environment stopped."""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.errors import InvalidRequest, NotFound, SandbayError
from sandbay.domain.exec import ProcessSpec
from sandbay.domain.files import normalize_path
from sandbay.domain.keys import Permission, Principal
from sandbay.kit.clock import utcnow
from sandbay.runtime.inside import ProcessHandle, ProcessRunner
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.inside.held import HeldWhileRunning
from sandbay.services.inside.target import RUNNING_ONLY, Target, open_target

log = logging.getLogger(__name__)

PYTHON = "python"
#: The context a cell runs in when it names none; it is not listed and not deletable.
DEFAULT = "default"
DEFAULT_TIMEOUT_S = 600
_GRACE_S = 2.0  # how long an interrupted cell has to stop before its context is killed
_READY_S = 20.0
_FRAMES = 256


@cache
def driver_source() -> str:
    return Path(__file__).with_name("interpreter_driver.py").read_text(encoding="utf-8")


class RunEnd(StrEnum):
    COMPLETED = "completed"
    TIMEOUT = "timeout"
    #: The context's process went away mid-cell (killed, environment stopped).
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Output:
    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class CellError:
    name: str
    value: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Finished:
    end: RunEnd
    reason: str = ""


Chunk = Output | CellError | Finished


@dataclass(frozen=True, slots=True)
class ContextInfo:
    id: str
    cwd: str
    language: str
    created_at: datetime
    active: bool


class _Process:
    """One running driver: its handle, and its frames as they are read."""

    def __init__(self, handle: ProcessHandle) -> None:
        self.handle = handle
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=_FRAMES)
        self.ready: asyncio.Future[dict[str, Any] | None]
        self.ready = asyncio.get_running_loop().create_future()
        self.stderr = bytearray()
        self.alive = True
        self.task = asyncio.create_task(self._read(), name="interpreter context")

    async def _read(self) -> None:
        pending = b""
        try:
            async for chunk in self.handle.output():
                if chunk.stream == "stderr":  # the driver's own, before it took fd 2
                    self.stderr = (self.stderr + chunk.data)[-4096:]
                    continue
                *lines, pending = (pending + chunk.data).split(b"\n")
                for line in lines:
                    await self._frame(line)
        except SandbayError:
            pass
        finally:
            self.alive = False
            if not self.ready.done():
                self.ready.set_result(None)
            await self.frames.put(None)

    async def _frame(self, line: bytes) -> None:
        try:
            frame = json.loads(line)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        if frame.get("type") == "ready":
            if not self.ready.done():
                self.ready.set_result(frame)
            return
        await self.frames.put(frame)

    async def why_not_started(self) -> str:
        try:
            code = await self.handle.wait()
        except SandbayError as exc:
            return exc.message
        said = self.stderr.decode(errors="replace").strip()
        return f"python3 exited ({code})" + (f": {said}" if said else "")

    async def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(Exception):
                await self.handle.kill()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        with contextlib.suppress(Exception):
            await self.handle.close()


class Run:
    """One cell's chunks, for its caller; a caller that leaves `detach`es and the
    cell runs on unread."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Chunk] = asyncio.Queue(maxsize=_FRAMES)
        self._detached = False

    async def put(self, chunk: Chunk) -> None:
        if not self._detached:
            await self._queue.put(chunk)

    async def chunks(self) -> AsyncIterator[Chunk]:
        while True:
            chunk = await self._queue.get()
            yield chunk
            if isinstance(chunk, Finished):
                return

    def detach(self) -> None:
        self._detached = True
        while not self._queue.empty():
            self._queue.get_nowait()


class Context:
    """One namespace: its driver process (started on demand) and its cell queue."""

    def __init__(self, context_id: str, cwd: str | None, language: str) -> None:
        self.id = context_id
        self.cwd = cwd
        self.language = language
        self.created_at = utcnow()
        self.process: _Process | None = None
        self.cells = asyncio.Lock()  # one cell at a time, in order
        self.starting = asyncio.Lock()

    def info(self) -> ContextInfo:
        active = self.process is not None and self.process.alive
        return ContextInfo(self.id, self.cwd or "", self.language, self.created_at, active)

    async def ensure(self, runner: ProcessRunner, target: Target) -> _Process:
        """The running driver, started (and waited for) when there is none."""
        async with self.starting:
            if self.process is not None and self.process.alive:
                return self.process
            if self.process is not None:
                await self.process.stop()
            spec = ProcessSpec(
                argv=["python3", "-u", "-c", driver_source()],
                env=dict(target.env),
                unset=target.unset,
                cwd=self.cwd,
                user=target.user,
                stdin=True,
            )
            process = _Process(await runner.spawn(target.environment_id, spec))
            try:
                ready = await asyncio.wait_for(asyncio.shield(process.ready), _READY_S)
            except TimeoutError:
                ready = None
            if ready is None:
                reason = await process.why_not_started() if not process.alive else "no answer"
                await process.stop()
                raise InvalidRequest(f"the Python interpreter could not start: {reason}")
            self.cwd = str(ready.get("cwd") or self.cwd or "")
            self.process = process
            return process

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()


async def _cell(
    process: _Process, cell: str, code: str, envs: dict[str, str], timeout: float, run: Run
) -> None:
    """Send the cell and relay its frames to `run` until its end."""
    line = json.dumps({"id": cell, "code": code, "envs": envs}) + "\n"
    try:
        await process.handle.write(line.encode())
    except SandbayError:
        await run.put(Finished(RunEnd.ENDED, "the interpreter's process ended"))
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout > 0 else None
    interrupted = False
    while True:
        left = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            frame = await asyncio.wait_for(process.frames.get(), left)
        except TimeoutError:
            if interrupted:  # it ignored the interrupt: the context goes with it
                await process.stop()
                await run.put(Finished(RunEnd.TIMEOUT))
                return
            interrupted = True
            await process.handle.signal("SIGINT")
            deadline = loop.time() + _GRACE_S
            continue
        if frame is None:
            await run.put(Finished(RunEnd.ENDED, "the interpreter's process ended"))
            return
        if frame.get("id") != cell:
            continue  # a late frame of a cell whose caller gave up on it
        kind = frame.get("type")
        if kind in ("stdout", "stderr"):
            await run.put(Output(str(kind), str(frame.get("text", ""))))
        elif kind == "error":
            name, value = str(frame.get("name", "")), str(frame.get("value", ""))
            await run.put(CellError(name, value, str(frame.get("traceback", ""))))
        elif kind == "control":
            if frame.get("text") == "interrupted":
                if interrupted:
                    await run.put(Finished(RunEnd.TIMEOUT))
                    return
                await run.put(CellError("KeyboardInterrupt", "", ""))
            await run.put(Finished(RunEnd.COMPLETED))
            return


class Interpreters(HeldWhileRunning):
    """Every interpreter context this server runs, by environment."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runner: ProcessRunner,
        holds: ActivityHolds,
    ) -> None:
        self._sessions = sessions
        self._runner = runner
        self._holds = holds
        self._by_env: dict[str, dict[str, Context]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _target(self, principal: Principal, sandbox: str, *, running: bool) -> Target:
        allowed = RUNNING_ONLY if running else None
        return await open_target(
            self._sessions, principal, sandbox, Permission.ENVIRONMENTS_EXEC, allowed=allowed
        )

    async def create_context(
        self, principal: Principal, sandbox: str, *, cwd: str | None, language: str | None
    ) -> ContextInfo:
        """A new context, its interpreter started (400 if the image has no python3)."""
        language = language or PYTHON
        if language != PYTHON:
            raise InvalidRequest(
                f"unsupported language: {language} (only '{PYTHON}' is supported currently)"
            )
        path = normalize_path(cwd) if cwd else None
        target = await self._target(principal, sandbox, running=True)
        context = Context(str(uuid.uuid4()), path, language)
        await context.ensure(self._runner, target)
        self._by_env.setdefault(target.environment_id, {})[context.id] = context
        return context.info()

    async def list_contexts(self, principal: Principal, sandbox: str) -> list[ContextInfo]:
        """The contexts created by callers (the default one is not listed)."""
        target = await self._target(principal, sandbox, running=False)
        contexts = self._by_env.get(target.environment_id, {}).values()
        infos = [c.info() for c in contexts if c.id != DEFAULT]
        return sorted(infos, key=lambda c: c.created_at)

    async def delete_context(self, principal: Principal, sandbox: str, context_id: str) -> None:
        """Forget the context and kill its interpreter (and what it started)."""
        if context_id == DEFAULT:
            raise InvalidRequest("cannot delete default context")
        target = await self._target(principal, sandbox, running=False)
        context = self._by_env.get(target.environment_id, {}).pop(context_id, None)
        if context is None:
            raise NotFound(f"context {context_id} not found")
        await context.stop()

    async def execute(
        self,
        principal: Principal,
        sandbox: str,
        *,
        code: str,
        context_id: str | None,
        envs: dict[str, str],
        timeout: float,
    ) -> Run:
        """Queue a cell on the context (the default one when none is named) and answer
        at once; its chunks come through the returned Run as it runs."""
        target = await self._target(principal, sandbox, running=True)
        contexts = self._by_env.setdefault(target.environment_id, {})
        key = context_id or DEFAULT
        context = contexts.get(key)
        if context is None:
            if context_id is not None:
                raise NotFound(f"context not found: {context_id}")
            context = contexts.setdefault(DEFAULT, Context(DEFAULT, None, PYTHON))
        run = Run()
        task = asyncio.create_task(self._run(context, target, code, envs, timeout, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def _run(
        self,
        context: Context,
        target: Target,
        code: str,
        envs: dict[str, str],
        timeout: float,
        run: Run,
    ) -> None:
        try:
            async with context.cells:
                with self._holds.hold(target.environment_id):  # a running cell is activity
                    try:
                        process = await context.ensure(self._runner, target)
                    except SandbayError as exc:
                        await run.put(Finished(RunEnd.ENDED, exc.message))
                        return
                    await _cell(process, uuid.uuid4().hex, code, envs, timeout, run)
        except Exception:
            log.exception("interpreter cell failed")
            await run.put(Finished(RunEnd.ENDED, "the interpreter failed"))

    def drop_environment(self, environment_id: str) -> None:
        """An environment that leaves running loses its contexts (their processes end
        with its workload, as Daytona's end with its daemon)."""
        contexts = self._by_env.pop(environment_id, None)
        if contexts:
            task = asyncio.create_task(self._stop_all(list(contexts.values())))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _stop_all(contexts: list[Context]) -> None:
        await asyncio.gather(*(c.stop() for c in contexts), return_exceptions=True)

    async def close(self) -> None:
        """Server shutdown: stop every interpreter (nobody could reach it again)."""
        contexts = [c for by_id in self._by_env.values() for c in by_id.values()]
        self._by_env.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_all(contexts), 15)
        for task in list(self._tasks):
            task.cancel()
