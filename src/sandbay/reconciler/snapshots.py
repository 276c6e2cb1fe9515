"""The snapshots loop: copies the snapshots that are due (a lease per snapshot, so
a crashed copier's work is taken up again) outside any request or transaction, a
running source frozen for the copy alone; then lets the forks that waited for the
copy go on (or fails them with its reason); and removes deleted snapshots' files.
A copy is staged and renamed into place, so a failed one leaves nothing behind."""

import asyncio
import contextlib
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from sandbay.db.models import EnvironmentModel, EnvironmentSnapshotModel
from sandbay.db.queries import snapshots as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Event
from sandbay.domain.errors import RuntimeFailure
from sandbay.domain.snapshots import SNAPSHOTTABLE, SnapshotState
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import PeriodicLoop
from sandbay.reconciler.actions import Snapshotter
from sandbay.runtime.archives import ArchiveStore
from sandbay.services.environments.snapshots import DELETED, REQUESTED
from sandbay.services.environments.transitions import transition
from sandbay.services.events.record import record_environment_event, record_event

log = logging.getLogger(__name__)
ACTOR = "system:snapshots"
LEASE = timedelta(seconds=60)
AT_ONCE = 2


def tree_bytes(root: Path) -> int:
    """What the files under `root` hold (apparent sizes, links not followed)."""
    total = 0
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            total += os.lstat(os.path.join(parent, name)).st_size
    return total


class SnapshotsLoop(PeriodicLoop):
    name = "snapshots"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        snapshotter: Snapshotter,
        store: ArchiveStore,
        interval: float,
    ) -> None:
        super().__init__(interval)
        self._sessions = sessions
        self._snapshotter = snapshotter
        self._store = store

    def on_event(self, event: Event) -> None:
        if event.type in (REQUESTED, DELETED):
            self.wake()

    async def sweep(self) -> None:
        async with self._sessions() as session:
            due = await queries.due(session, utcnow(), AT_ONCE)
        await asyncio.gather(*(self._take(snapshot_id) for snapshot_id in due))
        async with self._sessions() as session:
            for snapshot_id in await queries.stranded_forks(session, AT_ONCE * 8):
                snap = await session.get(EnvironmentSnapshotModel, snapshot_id)
                assert snap is not None
                error = None
                if snap.state is not SnapshotState.READY:
                    error = snap.error or f"the snapshot is {snap.state.value}"
                await self._settle_forks(session, snapshot_id, error)
            await session.commit()

    async def _take(self, snapshot_id: str) -> None:
        token = secrets.token_hex(16)
        async with self._sessions() as session:
            now = utcnow()
            if not await queries.claim(
                session, snapshot_id, token=token, now=now, until=now + LEASE
            ):
                return
            await session.commit()
            snap = await session.get(EnvironmentSnapshotModel, snapshot_id)
            assert snap is not None
            state, env_id = snap.state, snap.environment_id
            source = await session.get(EnvironmentModel, env_id)
            source_state = source.state if source is not None and not source.deleted_at else None
        renewer = asyncio.create_task(self._renew(snapshot_id, token))
        try:
            if state is SnapshotState.DELETING:
                await self._remove(snapshot_id, token)
            else:
                await self._copy(snapshot_id, token, env_id, source_state)
        finally:
            renewer.cancel()

    async def _renew(self, snapshot_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            with contextlib.suppress(Exception):
                async with self._sessions() as session:
                    await queries.renew(session, snapshot_id, token=token, until=utcnow() + LEASE)
                    await session.commit()

    async def _remove(self, snapshot_id: str, token: str) -> None:
        await self._store.delete(snapshot_id)
        async with self._sessions() as session:
            now = utcnow()
            await queries.finish(session, snapshot_id, token=token, deleted_at=now, updated_at=now)
            await session.commit()

    async def _copy(
        self, snapshot_id: str, token: str, env_id: str, source_state: EnvState | None
    ) -> None:
        """Copy the files (the snapshotter freezes a running source for the copy and
        thaws it whatever happens), then record the outcome under the lease."""
        frozen_ms: float | None = None
        size: int | None = None
        error: str | None = None
        if source_state is None or source_state.value not in SNAPSHOTTABLE:
            what = source_state.value if source_state else "deleted"
            error = f"source environment is {what}; only a running, paused or stopped one"
        else:
            try:
                staged = await self._store.staging(snapshot_id)
                live = source_state is EnvState.RUNNING
                frozen_ms = await self._snapshotter.copy_out(env_id, staged, live=live)
                size = await asyncio.to_thread(tree_bytes, staged)
                await self._store.commit(snapshot_id, staged)
            except RuntimeFailure as exc:
                error = exc.message
                with contextlib.suppress(Exception):
                    await self._store.delete(snapshot_id)
        await self._finish(snapshot_id, token, env_id, frozen_ms, size, error)

    async def _finish(
        self,
        snapshot_id: str,
        token: str,
        env_id: str,
        frozen_ms: float | None,
        size: int | None,
        error: str | None,
    ) -> None:
        now = utcnow()
        state = SnapshotState.READY if error is None else SnapshotState.FAILED
        async with self._sessions() as session:
            done = await queries.finish(
                session, snapshot_id, token=token, state=state, frozen_ms=frozen_ms,
                size_bytes=size, error=error, updated_at=now,
                ready_at=now if error is None else None,
            )  # fmt: skip
            if not done:
                return
            snap = await session.get(EnvironmentSnapshotModel, snapshot_id)
            assert snap is not None
            record_event(
                session,
                org_id=snap.org_id,
                environment_id=env_id,
                type=f"environment.snapshot_{state.value}",
                actor=ACTOR,
                reason=error,
                data={"snapshot_id": snapshot_id, "frozen_ms": frozen_ms, "size_bytes": size},
            )
            await self._settle_forks(session, snapshot_id, error)
            await session.commit()
        log.info("snapshot %s of %s %s (frozen %s ms)", snapshot_id, env_id, state, frozen_ms)

    async def _settle_forks(
        self, session: AsyncSession, snapshot_id: str, error: str | None
    ) -> None:
        """Environments waiting for this copy are created now, or fail with its reason."""
        for env in await queries.waiting_forks(session, snapshot_id):
            if error is None:
                env.next_attempt_at = utcnow()
                record_environment_event(
                    session, env, "environment.snapshot_copied", actor=ACTOR,
                    data={"snapshot_id": snapshot_id},
                )  # fmt: skip
            else:
                transition(
                    session, env, EnvState.ERROR, actor=ACTOR,
                    reason=f"snapshot {snapshot_id} failed: {error}",
                )  # fmt: skip
