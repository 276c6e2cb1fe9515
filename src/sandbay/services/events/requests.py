"""The audit of API calls: every mutating call (POST, PUT, PATCH, DELETE), refused
ones included, leaves an `api.request` event in its organization's log, written
off the request's path."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.services.events.record import record_event

log = logging.getLogger("sandbay.audit")

#: The type of the event every mutating API call leaves in its organization's log.
REQUEST_EVENT = "api.request"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One mutating call as the audit log keeps it: who, what route, what answer;
    never a body, a query string or a credential."""

    org_id: str | None
    actor: str
    key_id: str | None
    method: str
    route: str
    status: int

    def data(self) -> dict[str, object]:
        return {
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "key_id": self.key_id,
        }


class RequestAudit:
    """Records written in batches by a task of its own, so a request only appends to
    a list (exec latency is unchanged). A call made without a key that resolves
    belongs to no organization: it goes to the `sandbay.audit` log instead. A crash
    loses at most the last half second of records."""

    def __init__(self, *, interval: float = 0.5, batch: int = 500) -> None:
        self.interval, self.batch = interval, batch
        self.pending: list[RequestRecord] = []
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()

    def open(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.task = asyncio.create_task(self._run(), name="request-audit")

    def record(self, record: RequestRecord) -> None:
        if record.org_id is None:
            log.info("%s %s %s by %s", record.method, record.route, record.status, record.actor)
            return
        self.pending.append(record)
        if len(self.pending) >= self.batch:
            self.wake.set()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        if not self.pending or self.sessions is None:
            return
        batch, self.pending = self.pending, []
        async with self.sessions() as session:
            for r in batch:
                record_event(
                    session,
                    org_id=r.org_id or "",
                    type=REQUEST_EVENT,
                    actor=r.actor,
                    data=r.data(),
                )
            await session.commit()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)
            self.wake.clear()
            try:
                await self.flush()
            except Exception:  # the log must not stop the API; this batch is lost
                log.exception("writing the request audit failed")
