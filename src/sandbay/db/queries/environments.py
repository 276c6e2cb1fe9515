"""Queries on environments, including the reconciler's lease protocol. The one
place with dialect differences (`FOR UPDATE SKIP LOCKED` on PostgreSQL)."""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain import ids


async def get_live(
    session: AsyncSession, org_id: str, id_or_name: str, *, include_deleted: bool = False
) -> Env | None:
    """An environment of `org_id` by id or by name (DESIGN §1: `{id}` accepts both)."""
    if ids.has_prefix(id_or_name, ids.ENVIRONMENT):
        query = select(Env).where(Env.id == id_or_name, Env.org_id == org_id)
        query = query.where(Env.pool_key.is_(None))
        if not include_deleted:
            query = query.where(Env.deleted_at.is_(None))
    else:
        query = select(Env).where(Env.org_id == org_id, Env.name == id_or_name)
        query = query.where(Env.deleted_at.is_(None), Env.pool_key.is_(None))
    result = await session.execute(query.execution_options(populate_existing=True))
    return result.scalars().first()


async def name_taken(session: AsyncSession, org_id: str, name: str) -> bool:
    query = select(Env.id).where(Env.org_id == org_id, Env.name == name, Env.deleted_at.is_(None))
    return (await session.execute(query.limit(1))).first() is not None


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of an organization's environments, newest first; ids are
    time-ordered, so the cursor is the last id seen."""

    org_id: str
    states: Sequence[str] | None
    labels: dict[str, str]
    only_ids: frozenset[str] | None
    limit: int
    cursor: str | None

    def where(self, query: Select[Any]) -> Select[Any]:
        """`query` narrowed to this page (`limit + 1` rows tell whether there is more)."""
        query = query.where(Env.org_id == self.org_id, Env.pool_key.is_(None))
        if self.states:
            query = query.where(Env.state.in_(list(self.states)))
        else:
            query = query.where(Env.deleted_at.is_(None))
        for key, value in self.labels.items():
            query = query.where(Env.labels[key].as_string() == value)
        if self.only_ids is not None:
            query = query.where(Env.id.in_(list(self.only_ids)))
        if self.cursor:
            query = query.where(Env.id < self.cursor)
        return query.order_by(Env.id.desc()).limit(self.limit + 1)


async def list_page(session: AsyncSession, page: PageQuery) -> list[Env]:
    """The page as entities."""
    return list((await session.execute(page.where(select(Env)))).scalars())


async def list_page_rows(
    session: AsyncSession, page: PageQuery, columns: Sequence[str]
) -> list[dict[str, Any]]:
    """The page as dicts of `columns`: a read-only listing of up to 1,000 rows
    spends most of its time building ORM identities it never uses."""
    query = page.where(select(*(Env.__table__.c[name] for name in columns)))
    result = await session.execute(query)
    return [dict(zip(columns, row, strict=True)) for row in result.tuples()]


# ---- reconciler leases ---------------------------------------------------------------


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


async def touch_activity(
    session: AsyncSession, env_id: str, now: datetime, *, throttle: bool = True
) -> None:
    """Record activity without bumping `version` (activity is not a state change,
    so it must not make lifecycle requests lose their compare-and-set), at most
    once a second per environment."""
    query = update(Env).where(Env.id == env_id)
    if throttle:
        query = query.where(
            or_(Env.last_activity_at.is_(None), Env.last_activity_at < now - timedelta(seconds=1))
        )
    await session.execute(
        query.values(last_activity_at=now).execution_options(synchronize_session=False)
    )


async def touch_activity_many(session: AsyncSession, env_ids: Sequence[str], now: datetime) -> None:
    await session.execute(
        update(Env)
        .where(Env.id.in_(list(env_ids)))
        .values(last_activity_at=now)
        .execution_options(synchronize_session=False)
    )


# ---- policy and drift sweeps -----------------------------------------------------------


async def running_with_timers(session: AsyncSession) -> list[Env]:
    """Running environments with an idle auto-stop or a maximum lifetime."""
    query = select(Env).where(
        Env.state == "running",
        Env.desired_state == "running",
        or_(Env.auto_stop_interval > 0, Env.max_lifetime > 0),
    )
    return list((await session.execute(query)).scalars())


async def stopped_with_timers(session: AsyncSession) -> list[Env]:
    """Stopped or archived environments with an auto-archive or auto-delete timer."""
    query = select(Env).where(
        Env.state.in_(["stopped", "archived"]),
        Env.desired_state.in_(["stopped", "archived"]),
        or_(Env.auto_archive_interval > 0, Env.auto_delete_interval >= 0),
    )
    return list((await session.execute(query)).scalars())


async def in_states(session: AsyncSession, states: Sequence[str]) -> list[Env]:
    query = select(Env).where(Env.state.in_(list(states)))
    return list((await session.execute(query)).scalars())


async def runner_environments(session: AsyncSession, runner_id: str) -> list[tuple[str, str, str]]:
    """(id, state, desired state) of every live managed environment of a runner."""
    query = select(Env.id, Env.state, Env.desired_state).where(
        Env.runner_id == runner_id, Env.kind == "managed", Env.deleted_at.is_(None)
    )
    return [(r[0], r[1], r[2]) for r in await session.execute(query)]


async def live_ids(session: AsyncSession, env_ids: Sequence[str]) -> set[str]:
    if not env_ids:
        return set()
    query = select(Env.id).where(Env.id.in_(list(env_ids)), Env.deleted_at.is_(None))
    return set((await session.execute(query)).scalars())


async def mark_due(session: AsyncSession, env_ids: Sequence[str], now: datetime) -> None:
    """Ask the reconciler to look at these environments now (keeps earlier due times)."""
    if not env_ids:
        return
    await session.execute(
        update(Env)
        .where(
            Env.id.in_(list(env_ids)), or_(Env.next_attempt_at.is_(None), Env.next_attempt_at > now)
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


# ---- warm pools -------------------------------------------------------------------------


async def pool_candidates(session: AsyncSession, key: str, limit: int = 8) -> list[str]:
    """Ready, unleased members of a pool, oldest first."""
    query = (
        select(Env.id)
        .where(
            Env.pool_key == key,
            Env.state == "running",
            Env.desired_state == "running",
            Env.lease_token.is_(None),
        )
        .order_by(Env.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def pool_members(session: AsyncSession, key: str) -> list[tuple[str, str]]:
    """(id, state) of every live member of a pool."""
    query = select(Env.id, Env.state).where(Env.pool_key == key, Env.deleted_at.is_(None))
    return [(r[0], r[1]) for r in await session.execute(query)]
