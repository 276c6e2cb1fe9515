"""The shape every background loop shares: run `sweep()` every `interval` seconds
(sooner when woken), log and survive its failures, stop cleanly."""

import asyncio
import contextlib
import logging
import time

log = logging.getLogger(__name__)


class PeriodicLoop:
    name = "loop"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def enabled(self) -> bool:
        return self._interval > 0

    def start(self) -> None:
        if self.enabled():
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
