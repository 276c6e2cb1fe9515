"""Queries on environments: by id or name, pages, activity, the rows the policy
and drift sweeps look at, and `environment_from_model`, the one mapping of a row to
the domain shape. The reconciler's lease is in `leases`, warm pools in `pools`."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain import ids
from sandbay.domain.environments import Environment, EnvironmentKind
from sandbay.domain.states import DesiredState, EnvState

_STOPPED_OR_ARCHIVED = (EnvState.STOPPED, EnvState.ARCHIVED)
#: The table's columns, for reads that want rows, not entities: a statement that
#: names only these runs on Core's path, without the ORM's loading and autoflush.
_TABLE = Env.__table__.c


def environment_from_model(env: Env) -> Environment:
    """The environment as services hand it out (API and dialects map from this)."""
    return Environment.model_validate(env)


@dataclass(frozen=True, slots=True)
class _Finder:
    """The three lookups of one environment of an org (DESIGN §1: `{id}` accepts the
    id or the name), built once with bound parameters for `what` is selected:
    SQLAlchemy computes a statement's cache key once per object, and for a select of
    ~40 columns that key costs more than the query itself."""

    by_id: Select[Any]
    live_by_id: Select[Any]
    live_by_name: Select[Any]

    @classmethod
    def of(cls, what: Select[Any]) -> "_Finder":
        mine = (_TABLE.org_id == bindparam("org_id"), _TABLE.pool_key.is_(None))
        by_id = what.where(_TABLE.id == bindparam("key"), *mine)
        live = _TABLE.deleted_at.is_(None)
        return cls(
            by_id, by_id.where(live), what.where(_TABLE.name == bindparam("key"), live, *mine)
        )

    async def run(
        self, session: AsyncSession, org_id: str, id_or_name: str, include_deleted: bool
    ) -> Any:
        if ids.has_prefix(id_or_name, ids.ENVIRONMENT):
            query = self.by_id if include_deleted else self.live_by_id
        else:
            query = self.live_by_name
        return await session.execute(query, {"key": id_or_name, "org_id": org_id})


#: The columns of the domain shape: reads select them and validate `Environment`
#: straight from the rows, without building ORM identities they never use.
SHAPE_COLUMNS = tuple(Environment.model_fields)
_SHAPE = select(*(_TABLE[name] for name in SHAPE_COLUMNS))
_ROWS = _Finder.of(select(Env).execution_options(populate_existing=True))
_SHAPES = _Finder.of(_SHAPE)


async def get_live(
    session: AsyncSession, org_id: str, id_or_name: str, *, include_deleted: bool = False
) -> Env | None:
    """An environment of `org_id` by id or by name, as a row to change."""
    result = await _ROWS.run(session, org_id, id_or_name, include_deleted)
    row: Env | None = result.scalars().first()
    return row


async def read_live(
    session: AsyncSession, org_id: str, id_or_name: str, *, include_deleted: bool = False
) -> Environment | None:
    """`get_live` as the domain shape, for reads that change nothing."""
    row = (await _SHAPES.run(session, org_id, id_or_name, include_deleted)).first()
    if row is None:
        return None
    return Environment.model_validate(dict(zip(SHAPE_COLUMNS, row, strict=True)))


async def name_taken(session: AsyncSession, org_id: str, name: str) -> bool:
    query = select(Env.id).where(Env.org_id == org_id, Env.name == name, Env.deleted_at.is_(None))
    return (await session.execute(query.limit(1))).first() is not None


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of an organization's environments, newest first; ids are
    time-ordered, so the cursor is the last id seen."""

    org_id: str
    states: Sequence[EnvState] | None
    labels: dict[str, str]
    only_ids: frozenset[str] | None
    limit: int
    cursor: str | None

    def where(self, query: Select[Any]) -> Select[Any]:
        """`query` narrowed to this page (`limit + 1` rows tell whether there is more)."""
        query = query.where(_TABLE.org_id == self.org_id, _TABLE.pool_key.is_(None))
        if self.states:
            query = query.where(_TABLE.state.in_(list(self.states)))
        else:
            query = query.where(_TABLE.deleted_at.is_(None))
        for key, value in self.labels.items():
            query = query.where(_TABLE.labels[key].as_string() == value)
        if self.only_ids is not None:
            query = query.where(_TABLE.id.in_(list(self.only_ids)))
        if self.cursor:
            query = query.where(_TABLE.id < self.cursor)
        return query.order_by(_TABLE.id.desc()).limit(self.limit + 1)


async def list_page_rows(
    session: AsyncSession, page: PageQuery, columns: Sequence[str]
) -> list[dict[str, Any]]:
    """The page as dicts of `columns`: a read-only listing of up to 1,000 rows
    spends most of its time building ORM identities it never uses."""
    query = page.where(select(*(_TABLE[name] for name in columns)))
    result = await session.execute(query)
    return [dict(zip(columns, row, strict=True)) for row in result]


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
    """Running or paused environments with an idle auto-pause or auto-stop, or a
    maximum lifetime."""
    query = select(Env).where(
        Env.state.in_((EnvState.RUNNING, EnvState.PAUSED)),
        Env.desired_state.in_((DesiredState.RUNNING, DesiredState.PAUSED)),
        or_(Env.auto_stop_interval > 0, Env.max_lifetime > 0, Env.auto_pause_interval > 0),
    )
    return list((await session.execute(query)).scalars())


async def stopped_with_timers(session: AsyncSession) -> list[Env]:
    """Stopped or archived environments with an auto-archive or auto-delete timer."""
    query = select(Env).where(
        Env.state.in_(_STOPPED_OR_ARCHIVED),
        Env.desired_state.in_((DesiredState.STOPPED, DesiredState.ARCHIVED)),
        or_(Env.auto_archive_interval > 0, Env.auto_delete_interval >= 0),
    )
    return list((await session.execute(query)).scalars())


async def in_states(session: AsyncSession, states: Sequence[EnvState]) -> list[Env]:
    query = select(Env).where(Env.state.in_(list(states)))
    return list((await session.execute(query)).scalars())


async def runner_environments(
    session: AsyncSession, runner_id: str
) -> list[tuple[str, EnvState, DesiredState]]:
    """(id, state, desired state) of every live managed environment of a runner."""
    query = select(Env.id, Env.state, Env.desired_state).where(
        Env.runner_id == runner_id, Env.kind == EnvironmentKind.MANAGED, Env.deleted_at.is_(None)
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
