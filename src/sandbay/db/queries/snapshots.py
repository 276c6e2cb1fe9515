"""Queries of environment snapshots: one by id or name, an organization's live ones
and what they take, the copies and removals due (a lease per snapshot, taken over
when its holder went away), and the forks waiting for one."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.db.models import EnvironmentSnapshotModel as Snap
from sandbay.domain.snapshots import SnapshotState
from sandbay.domain.states import EnvState

_WORK = (SnapshotState.CREATING, SnapshotState.DELETING)


async def get_live(session: AsyncSession, org_id: str, id_or_name: str) -> Snap | None:
    """A snapshot of `org_id` that is not deleted, by id or else by name."""
    base = select(Snap).where(Snap.org_id == org_id, Snap.deleted_at.is_(None))
    found = (await session.execute(base.where(Snap.id == id_or_name))).scalars().first()
    if found is None:
        found = (await session.execute(base.where(Snap.name == id_or_name))).scalars().first()
    return found


async def list_live(
    session: AsyncSession, org_id: str, *, environment_id: str | None = None
) -> Sequence[Snap]:
    """The organization's live snapshots (of one environment, if given), newest first."""
    query = select(Snap).where(Snap.org_id == org_id, Snap.deleted_at.is_(None))
    if environment_id is not None:
        query = query.where(Snap.environment_id == environment_id)
    return (await session.execute(query.order_by(Snap.id.desc()))).scalars().all()


async def totals(session: AsyncSession, org_id: str) -> tuple[int, int]:
    """How many live snapshots the organization keeps (deleting ones not counted),
    and the bytes they take."""
    query = select(func.count(), func.coalesce(func.sum(Snap.size_bytes), 0)).where(
        Snap.org_id == org_id, Snap.deleted_at.is_(None), Snap.state != SnapshotState.DELETING
    )
    count, size = (await session.execute(query)).one()
    return int(count or 0), int(size or 0)


async def name_taken(session: AsyncSession, org_id: str, name: str) -> bool:
    query = select(Snap.id).where(
        Snap.org_id == org_id, Snap.name == name, Snap.deleted_at.is_(None)
    )
    return (await session.execute(query.limit(1))).first() is not None


def _free(now: datetime) -> Any:
    return or_(Snap.lease_expires_at.is_(None), Snap.lease_expires_at < now)


async def due(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Snapshots to copy or remove whose lease is free (or ran out), oldest first."""
    query = (
        select(Snap.id)
        .where(Snap.deleted_at.is_(None), Snap.state.in_(_WORK), _free(now))
        .order_by(Snap.created_at)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def being_made(session: AsyncSession, environment_id: str) -> bool:
    """Whether a snapshot of this environment is still being made (claimed or not)."""
    query = select(Snap.id).where(
        Snap.environment_id == environment_id,
        Snap.state == SnapshotState.CREATING,
        Snap.deleted_at.is_(None),
    )
    return (await session.execute(query.limit(1))).first() is not None


async def copying(session: AsyncSession, environment_id: str, now: datetime) -> bool:
    """Whether a copier holds a snapshot of this environment right now (and with it,
    perhaps, the environment's freeze)."""
    query = select(Snap.id).where(
        Snap.environment_id == environment_id,
        Snap.state == SnapshotState.CREATING,
        Snap.deleted_at.is_(None),
        Snap.lease_expires_at > now,
    )
    return (await session.execute(query.limit(1))).first() is not None


async def claim(
    session: AsyncSession, snapshot_id: str, *, token: str, now: datetime, until: datetime
) -> bool:
    """Take a due snapshot (one claimant wins)."""
    result = await session.execute(
        update(Snap)
        .where(
            Snap.id == snapshot_id,
            Snap.deleted_at.is_(None),
            Snap.state.in_(_WORK),
            _free(now),
        )
        .values(lease_token=token, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def finish(session: AsyncSession, snapshot_id: str, *, token: str, **values: Any) -> bool:
    """Write the outcome and give the lease back; False once the lease is not ours."""
    result = await session.execute(
        update(Snap)
        .where(Snap.id == snapshot_id, Snap.lease_token == token)
        .values(lease_token=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def waiting_forks(session: AsyncSession, snapshot_id: str) -> Sequence[Env]:
    """Live environments still to be created from the snapshot."""
    query = select(Env).where(
        Env.snapshot_id == snapshot_id, Env.state == EnvState.CREATING, Env.deleted_at.is_(None)
    )
    return (await session.execute(query)).scalars().all()


async def forks_of(
    session: AsyncSession, environment_id: str, *, include_deleted: bool
) -> Sequence[Env]:
    """Environments made from snapshots of this environment, oldest first."""
    made_from = select(Snap.id).where(Snap.environment_id == environment_id)
    query = select(Env).where(Env.snapshot_id.in_(made_from))
    if not include_deleted:
        query = query.where(Env.deleted_at.is_(None))
    return (await session.execute(query.order_by(Env.created_at))).scalars().all()


async def renew(session: AsyncSession, snapshot_id: str, *, token: str, until: datetime) -> bool:
    result = await session.execute(
        update(Snap)
        .where(Snap.id == snapshot_id, Snap.lease_token == token)
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def stranded_forks(session: AsyncSession, limit: int) -> list[str]:
    """Snapshots that are no longer being made but still have forks waiting, not
    due: a fork whose create committed just after the copy was recorded."""
    query = (
        select(Snap.id)
        .join(Env, Env.snapshot_id == Snap.id)
        .where(
            Snap.state != SnapshotState.CREATING,
            Env.state == EnvState.CREATING,
            Env.next_attempt_at.is_(None),
            Env.deleted_at.is_(None),
        )
        .distinct()
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
