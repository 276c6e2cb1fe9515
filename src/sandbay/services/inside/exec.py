"""One-shot commands: run to completion (output capped in memory) or streamed as
produced. A timeout, or a streaming client that goes away, kills the command's
whole process tree."""

import asyncio
import codecs
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from sandbay.domain.errors import SandbayError
from sandbay.domain.exec import (
    ExecExitEvent,
    ExecOutputEvent,
    ExecRequest,
    ExecResult,
    OutputChunk,
    ProcessSpec,
    command_argv,
)
from sandbay.domain.keys import Permission, Principal
from sandbay.runtime.inside import ProcessHandle
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import Target, open_target


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One server-sent event of a streaming exec: `stdout`, `stderr`, `exit`, `error`."""

    event: str
    data: ExecOutputEvent | ExecExitEvent | dict[str, str]


def exec_spec(target: Target, body: ExecRequest) -> ProcessSpec:
    return ProcessSpec(
        argv=command_argv(body.command),
        # The environment's own variables (a warm-pool container was created without
        # them), then the request's.
        env={**target.env, **body.env},
        unset=target.unset,
        cwd=body.cwd,
        user=body.user or target.user,
        stdin=body.stdin is not None,
    )


async def _feed(handle: ProcessHandle, data: str | None) -> None:
    """Write stdin beside the output reader (a command that does not read its input
    must not block one that fills its output), then close it."""
    if data is None:
        return
    with contextlib.suppress(SandbayError, OSError):  # it exited without reading
        await handle.write(data.encode())
        await handle.close_stdin()


async def _run(
    inside: InsideService, target: Target, body: ExecRequest
) -> AsyncGenerator[OutputChunk | ExecExitEvent, None]:
    """Output chunks, then one ExecExitEvent. Closing the iterator early kills it."""
    started = time.monotonic()
    timeout = body.timeout or inside.limits.default_timeout
    with inside.holds.hold(target.environment_id):  # a running command is activity
        async for item in _run_held(inside, target, body, started, timeout):
            yield item


async def _run_held(
    inside: InsideService, target: Target, body: ExecRequest, started: float, timeout: float
) -> AsyncGenerator[OutputChunk | ExecExitEvent, None]:
    handle = await inside.runner.spawn(target.environment_id, exec_spec(target, body))
    timed_out = asyncio.Event()

    async def expire() -> None:
        await asyncio.sleep(timeout)
        timed_out.set()
        await handle.kill()

    timer = asyncio.create_task(expire())
    feeder = asyncio.create_task(_feed(handle, body.stdin))
    finished = False
    try:
        async for chunk in handle.output():
            yield chunk
        code = await handle.wait()
        finished = True
    finally:
        feeder.cancel()
        if not finished and not timer.done() and handle.pid is not None:
            # The caller went away (or the start failed): nothing must outlive it.
            timer.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(handle.kill())
        timer.cancel()
        await handle.close()
    yield ExecExitEvent(
        exit_code=code,
        timed_out=timed_out.is_set(),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def run_command(
    inside: InsideService, principal: Principal, id_or_name: str, body: ExecRequest
) -> ExecResult:
    """Run to completion. Each stream keeps at most the configured bytes in memory;
    the rest is counted and dropped (the `*_truncated` flags say so)."""
    target = await open_target(inside.sessions, principal, id_or_name, Permission.ENVIRONMENTS_EXEC)
    limit = inside.limits.output_limit_bytes
    kept = {"stdout": bytearray(), "stderr": bytearray()}
    total = {"stdout": 0, "stderr": 0}
    end: ExecExitEvent | None = None
    async for item in _run(inside, target, body):
        if isinstance(item, ExecExitEvent):
            end = item
            continue
        total[item.stream] += len(item.data)
        room = limit - len(kept[item.stream])
        if room > 0:
            kept[item.stream] += item.data[:room]
    assert end is not None
    return ExecResult(
        exit_code=end.exit_code,
        stdout=kept["stdout"].decode(errors="replace"),
        stderr=kept["stderr"].decode(errors="replace"),
        timed_out=end.timed_out,
        duration_ms=end.duration_ms,
        stdout_truncated=total["stdout"] > limit,
        stderr_truncated=total["stderr"] > limit,
        stdout_bytes=total["stdout"],
        stderr_bytes=total["stderr"],
    )


@dataclass(frozen=True, slots=True)
class CombinedResult:
    """A command's stdout and stderr interleaved as produced (what a terminal shows),
    capped like `run_command`'s streams."""

    exit_code: int | None
    output: str
    timed_out: bool
    truncated: bool


async def run_combined(
    inside: InsideService, principal: Principal, id_or_name: str, body: ExecRequest
) -> CombinedResult:
    """Run to completion with both streams in one buffer, in arrival order (the
    shape of Daytona's process execute)."""
    target = await open_target(inside.sessions, principal, id_or_name, Permission.ENVIRONMENTS_EXEC)
    limit = inside.limits.output_limit_bytes
    kept = bytearray()
    total = 0
    end: ExecExitEvent | None = None
    async for item in _run(inside, target, body):
        if isinstance(item, ExecExitEvent):
            end = item
            continue
        total += len(item.data)
        kept += item.data[: max(0, limit - len(kept))]
    assert end is not None
    return CombinedResult(
        exit_code=end.exit_code,
        output=kept.decode(errors="replace"),
        timed_out=end.timed_out,
        truncated=total > limit,
    )


async def stream_command(
    inside: InsideService, principal: Principal, id_or_name: str, body: ExecRequest
) -> AsyncIterator[StreamEvent]:
    """Checks first (so refusals are plain error answers), then the event stream."""
    target = await open_target(inside.sessions, principal, id_or_name, Permission.ENVIRONMENTS_EXEC)
    return _events(inside, target, body)


async def _events(
    inside: InsideService, target: Target, body: ExecRequest
) -> AsyncIterator[StreamEvent]:
    # Chunks may split a UTF-8 character: decode each stream incrementally.
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}
    runner = _run(inside, target, body)
    try:
        async for item in runner:
            if isinstance(item, ExecExitEvent):
                for stream, decoder in decoders.items():
                    if rest := decoder.decode(b"", final=True):
                        yield StreamEvent(stream, ExecOutputEvent(data=rest))
                yield StreamEvent("exit", item)
            elif text := decoders[item.stream].decode(item.data):
                yield StreamEvent(item.stream, ExecOutputEvent(data=text))
    except SandbayError as exc:
        yield StreamEvent("error", {"type": exc.error_type, "message": exc.message})
    finally:
        await runner.aclose()
