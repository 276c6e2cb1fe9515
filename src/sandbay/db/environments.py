"""Queries on environments, including the reconciler's lease protocol. The one
place with dialect differences (`FOR UPDATE SKIP LOCKED` on PostgreSQL)."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain import ids


async def get_live(
    session: AsyncSession, org_id: str, id_or_name: str, *, include_deleted: bool = False
) -> Env | None:
    """An environment of `org_id` by id or by name (DESIGN §1: `{id}` accepts both)."""
    if ids.has_prefix(id_or_name, ids.ENVIRONMENT):
        query = select(Env).where(Env.id == id_or_name, Env.org_id == org_id)
        if not include_deleted:
            query = query.where(Env.deleted_at.is_(None))
    else:
        query = select(Env).where(Env.org_id == org_id, Env.name == id_or_name)
        query = query.where(Env.deleted_at.is_(None))
    result = await session.execute(query.execution_options(populate_existing=True))
    return result.scalars().first()


async def name_taken(session: AsyncSession, org_id: str, name: str) -> bool:
    query = select(Env.id).where(Env.org_id == org_id, Env.name == name, Env.deleted_at.is_(None))
    return (await session.execute(query.limit(1))).first() is not None


async def list_page(
    session: AsyncSession,
    org_id: str,
    *,
    states: Sequence[str] | None,
    labels: dict[str, str],
    only_ids: frozenset[str] | None,
    limit: int,
    cursor: str | None,
) -> list[Env]:
    """One page, newest first; ids are time-ordered so the cursor is the last id."""
    query = select(Env).where(Env.org_id == org_id)
    if states:
        query = query.where(Env.state.in_(list(states)))
    else:
        query = query.where(Env.deleted_at.is_(None))
    for key, value in labels.items():
        query = query.where(Env.labels[key].as_string() == value)
    if only_ids is not None:
        query = query.where(Env.id.in_(list(only_ids)))
    if cursor:
        query = query.where(Env.id < cursor)
    query = query.order_by(Env.id.desc()).limit(limit + 1)
    return list((await session.execute(query)).scalars())


# ---- reconciler leases ---------------------------------------------------------------


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(Env.lease_expires_at.is_(None), Env.lease_expires_at < now)


async def due_ids(
    session: AsyncSession, now: datetime, *, limit: int, exclude: Sequence[str]
) -> list[str]:
    query = (
        select(Env.id)
        .where(Env.next_attempt_at <= now, _lease_free(now))
        .order_by(Env.next_attempt_at)
        .limit(limit)
    )
    if exclude:
        query = query.where(Env.id.not_in(list(exclude)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await session.execute(query)).scalars())


async def claim(
    session: AsyncSession, env_id: str, *, token: str, owner: str, now: datetime, ttl: float
) -> bool:
    """Take the lease if it is free. Bumps `version` so that a previous holder whose
    lease expired can no longer apply an outcome (its compare-and-set fails)."""
    result = await session.execute(
        update(Env)
        .where(Env.id == env_id, _lease_free(now))
        .values(
            lease_token=token,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=ttl),
            version=Env.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def renew(
    session: AsyncSession, env_id: str, *, token: str, now: datetime, ttl: float
) -> bool:
    result = await session.execute(
        update(Env)
        .where(Env.id == env_id, Env.lease_token == token)
        .values(lease_expires_at=now + timedelta(seconds=ttl))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release(session: AsyncSession, env_id: str, *, token: str) -> None:
    await session.execute(
        update(Env)
        .where(Env.id == env_id, Env.lease_token == token)
        .values(lease_token=None, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def finish(session: AsyncSession, env_id: str, *, token: str, version: int) -> bool:
    """Mark converged and release the lease, unless the row changed since `version`."""
    result = await session.execute(
        update(Env)
        .where(Env.id == env_id, Env.lease_token == token, Env.version == version)
        .values(
            next_attempt_at=None,
            attempts=0,
            lease_token=None,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_owner(session: AsyncSession, owner: str) -> None:
    """Give back every lease this process holds (clean shutdown)."""
    await session.execute(
        update(Env)
        .where(and_(Env.lease_owner == owner, Env.lease_token.is_not(None)))
        .values(lease_token=None, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def touch_activity(session: AsyncSession, env_id: str, now: datetime) -> None:
    """Record activity without bumping `version` (activity is not a state change,
    so it must not make lifecycle requests lose their compare-and-set), at most
    once a second per environment."""
    await session.execute(
        update(Env)
        .where(
            Env.id == env_id,
            or_(Env.last_activity_at.is_(None), Env.last_activity_at < now - timedelta(seconds=1)),
        )
        .values(last_activity_at=now)
        .execution_options(synchronize_session=False)
    )
