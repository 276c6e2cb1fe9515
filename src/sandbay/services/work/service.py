"""The work capability as one object: the worker protocol with its lease limits and
this process's long-poll wake-ups bound."""

from dataclasses import dataclass, field

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

    async def poll(
        self,
        principal: Principal,
        env: str,
        *,
        worker_id: str | None,
        block_ms: int | None,
        reclaim_ms: int,
    ) -> WorkItem | None:
        """Long poll: holds no database connection while it waits."""
        return await protocol.poll(
            self.sessions, self.wakeups, principal, env,
            worker_id=worker_id, block_ms=block_ms, reclaim_ms=reclaim_ms,
        )  # fmt: skip

    async def ack(
        self,
        session: AsyncSession,
        principal: Principal,
        env: str,
        work_id: str,
        *,
        worker_id: str | None,
    ) -> WorkItem:
        return await protocol.ack(
            session, principal, env, work_id, worker_id=worker_id, limits=self.limits
        )

    async def heartbeat(
        self,
        session: AsyncSession,
        principal: Principal,
        env: str,
        work_id: str,
        *,
        expected_last_heartbeat: str | None,
        desired_ttl_seconds: int | None,
        worker_id: str | None,
    ) -> WorkHeartbeat:
        return await protocol.heartbeat(
            session, principal, env, work_id,
            expected_last_heartbeat=expected_last_heartbeat,
            desired_ttl_seconds=desired_ttl_seconds, worker_id=worker_id, limits=self.limits,
        )  # fmt: skip
