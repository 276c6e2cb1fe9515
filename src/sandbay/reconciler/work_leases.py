"""The work-item lease loop: finds items whose worker stopped heartbeating and
applies each item's policy (re-queue within its attempt limit, or stop with the
reason recorded), and stops the live items of deleted environments.
Level-triggered and idempotent: after a crash the expired leases are simply still
expired; replicas racing on one item are settled by the compare-and-set on its
`version`."""

import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from sandbay.db.queries import work as queries
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import PeriodicLoop
from sandbay.services.work.protocol import expire_lease, stop_orphaned

log = logging.getLogger(__name__)

ACTOR = "reconciler"
_BATCH = 100


class WorkLeaseReaper(PeriodicLoop):
    name = "work-lease-reaper"

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], interval: float) -> None:
        self._sessions = sessions
        super().__init__(interval)

    async def sweep(self) -> int:
        """Handle every lease expired now and every orphaned item; returns how many
        items moved."""
        async with self._sessions() as session:
            due = await queries.expired_ids(session, utcnow(), limit=_BATCH)
            orphans = await queries.orphaned_ids(session, limit=_BATCH)
            await session.commit()
        moved = 0
        for work_id in due:
            try:
                async with self._sessions() as session:
                    target = await expire_lease(session, work_id, actor=ACTOR)
                    await session.commit()
            except StaleDataError:
                continue  # a heartbeat (or another replica) changed it first
            if target is not None:
                moved += 1
                log.info("work item %s: lease expired, now %s", work_id, target.value)
        for work_id in orphans:
            with contextlib.suppress(StaleDataError):
                async with self._sessions() as session:
                    moved += await stop_orphaned(session, work_id, actor=ACTOR)
                    await session.commit()
        return moved
