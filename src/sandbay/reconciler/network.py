"""Re-enforces the network policy of restricted running environments now and then:
starts made by other processes (a separate `sandbay reconciler`) and anything that
reset a namespace's rules are caught within one interval."""

import asyncio
import contextlib
import logging

from sandbay.services.access.network import NetworkEnforcer

log = logging.getLogger(__name__)


class NetworkPolicyLoop:
    def __init__(self, *, enforcer: NetworkEnforcer, interval: float) -> None:
        self._enforcer = enforcer
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="network policy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._enforcer.close()

    async def _run(self) -> None:
        while True:
            try:
                await self._enforcer.sweep()
            except Exception:
                log.exception("network policy sweep failed")
            await asyncio.sleep(self._interval)
