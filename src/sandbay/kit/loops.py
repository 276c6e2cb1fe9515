"""Background jobs: the `Loop` protocol every one of them meets, `PeriodicLoop` (the
one implementation of "run `sweep()` every `interval` seconds, sooner when woken,
log and survive failures, stop cleanly") and `Hint` (how a use case asks a loop it
does not know to run sooner)."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class Loop(Protocol):
    """What the loop manager starts and stops."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Hint:
    """A wake-up a service fires and a loop listens to: the service depends on this,
    not on the loop (dstack's pipeline hinter)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def __call__(self) -> None:
        for listener in self._listeners:
            listener()


class TaskLoop:
    """A loop that is one long-running coroutine (`_run`), in a task of its own."""

    name = "loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def enabled(self) -> bool:
        return True

    async def _run(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        if self.enabled():
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class PeriodicLoop(TaskLoop):
    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def enabled(self) -> bool:
        return self._interval > 0

    async def sweep(self) -> object:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            self._wake.clear()
            try:
                await self.sweep()
            except Exception:
                log.exception("%s sweep failed", self.name)
            pause = max(0.05, self._interval - (time.monotonic() - began))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=pause)
