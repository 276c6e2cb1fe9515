"""The reconciler's lease on an environment: which rows are due, claiming one
(a compare-and-set that bumps `version`), renewing, finishing and releasing it, and
freeing the leases of processes that are gone. The one place with a dialect
difference for leases (`FOR UPDATE SKIP LOCKED` on PostgreSQL)."""

import os
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(Env.lease_expires_at.is_(None), Env.lease_expires_at < now)


async def due_ids(
    session: AsyncSession,
    now: datetime,
    *,
    runner_id: str,
    limit: int,
    exclude: Sequence[str],
) -> list[str]:
    """Environments due for reconciling on this runner (self-hosted ones have none)."""
    query = (
        select(Env.id)
        .where(Env.next_attempt_at <= now, _lease_free(now))
        .where(or_(Env.runner_id == runner_id, Env.runner_id.is_(None)))
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


async def release_dead_local_leases(session: AsyncSession, hostname: str, me: str) -> None:
    """Leases held by processes of this host that no longer exist (a crashed server)
    are freed at once instead of waiting for them to expire."""
    rows = await session.execute(
        select(Env.id, Env.lease_owner).where(Env.lease_owner.like(f"{hostname}:%"))
    )
    dead = [env_id for env_id, owner in rows if owner and not _alive(owner, me)]
    if dead:
        await session.execute(
            update(Env)
            .where(Env.id.in_(dead))
            .values(lease_token=None, lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )


def _alive(owner: str, me: str) -> bool:
    """Owners are `host:pid:nonce`; our own pid with another nonce is an earlier
    incarnation (a restarted container keeps its pid)."""
    try:
        pid = int(owner.split(":")[1])
        if pid == os.getpid():
            return owner == me
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


async def release_owner(session: AsyncSession, owner: str) -> None:
    """Give back every lease this process holds (clean shutdown)."""
    await session.execute(
        update(Env)
        .where(and_(Env.lease_owner == owner, Env.lease_token.is_not(None)))
        .values(lease_token=None, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
