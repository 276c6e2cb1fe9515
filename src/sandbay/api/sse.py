"""Server-sent events: the wire format, keep-alive comments while a source is idle
(they also reveal a client that went away), and a response that always closes its
source, so a stream's clean-up (killing a command) runs when the client leaves."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from sandbay.services.agents.runs import LiveRun

KEEPALIVE_S = 15.0
_PING = b": keep-alive\n\n"


async def close_source(source: object) -> None:
    """Close an async generator (runs its `finally`), whatever state it is in."""
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def sse(
    event: str | None, data: BaseModel | dict[str, Any] | str, *, id: str | None = None
) -> bytes:
    """One event; `data` is JSON (a model or dict) or a preformatted string."""
    if isinstance(data, BaseModel):
        text = data.model_dump_json()
    elif isinstance(data, dict):
        text = json.dumps(data)
    else:
        text = data
    lines = [f"event: {event}"] if event else []
    if id is not None:
        lines.append(f"id: {id}")
    lines += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


async def _with_keepalive(source: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """Items of `source`, with a ping whenever it is silent for `interval` seconds.
    The source runs in its own task, so a ping never interrupts it mid-step."""
    queue: asyncio.Queue[tuple[bytes | None, BaseException | None]] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put((item, None))
        except Exception as exc:
            await queue.put((None, exc))
            return
        await queue.put((None, None))

    producer = asyncio.create_task(produce())
    getter: asyncio.Task[tuple[bytes | None, BaseException | None]] | None = None
    try:
        while True:
            getter = getter or asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter}, timeout=interval)
            if not done:
                yield _PING
                continue
            item, error = getter.result()
            getter = None
            if error is not None:
                raise error
            if item is None:
                return
            yield item
    finally:
        for task in (producer, getter):
            if task is not None:
                task.cancel()
        await asyncio.wait({t for t in (producer, getter) if t is not None})
        await close_source(source)


class SSEResponse(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, source: AsyncIterator[bytes], *, keepalive: float = KEEPALIVE_S) -> None:
        self._stream = _with_keepalive(source, keepalive)
        super().__init__(
            self._stream,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_source(self._stream)


class ClosingStreamingResponse(StreamingResponse):
    """A byte stream (download, logs) whose source is closed however the answer ends."""

    def __init__(self, source: AsyncIterator[bytes], **kwargs: Any) -> None:
        self._source = source
        super().__init__(source, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_source(self._source)


async def agent_run_answer(
    live: LiveRun, *, stream: bool, events: Callable[[LiveRun], AsyncIterator[bytes]]
) -> Response:
    """An agent run's answer, the same on every surface: its events as they come
    (`events` encodes them in the surface's format), or its view once it ends; the
    run id in `X-Agent-Run-Id` either way."""
    headers = {"X-Agent-Run-Id": live.spec.run_id}
    if stream:
        response = SSEResponse(events(live))
        response.headers.update(headers)
        return response
    await live.done.wait()
    return Response(live.view().model_dump_json(), media_type="application/json", headers=headers)
