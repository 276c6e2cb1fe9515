"""The work capability as one object: the worker protocol with its lease limits and
this process's long-poll wake-ups bound."""

from dataclasses import dataclass, field
from typing import Any

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.keys import Principal
from sandbay.domain.work import LeaseLimits, WorkHeartbeat, WorkItem
from sandbay.services.work import protocol
from sandbay.services.work.protocol import WorkWakeups


@dataclass(frozen=True, slots=True)
class WorkService:
    sessions: async_sessionmaker[AsyncSession]
    limits: LeaseLimits = field(default_factory=LeaseLimits)
    wakeups: WorkWakeups = field(default_factory=WorkWakeups)

    async def poll(self, principal: Principal, env: str, **options: Any) -> WorkItem | None:
        """Long poll: holds no database connection while it waits."""
        return await protocol.poll(self.sessions, self.wakeups, principal, env, **options)

    async def ack(
        self, session: AsyncSession, principal: Principal, env: str, work_id: str, **options: Any
    ) -> WorkItem:
        return await protocol.ack(session, principal, env, work_id, limits=self.limits, **options)

    async def heartbeat(
        self, session: AsyncSession, principal: Principal, env: str, work_id: str, **options: Any
    ) -> WorkHeartbeat:
        return await protocol.heartbeat(
            session, principal, env, work_id, limits=self.limits, **options
        )
