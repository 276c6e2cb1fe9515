"""The filtered, sorted listing of environments (`domain.search`) as one statement
on the table's columns, and the environments whose TTL has run out."""

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.domain.search import EnvironmentSearch, Range, SortField, TimeRange
from sandbay.domain.states import DesiredState, EnvState

_TABLE = Env.__table__.c
_SORT = {
    SortField.NAME: _TABLE.name,
    SortField.CPU: _TABLE.cpu,
    SortField.MEMORY: _TABLE.memory_mb,
    SortField.DISK: _TABLE.disk_gb,
    SortField.LAST_ACTIVITY_AT: _TABLE.last_activity_at,
    SortField.CREATED_AT: _TABLE.created_at,
}


def _whole_range(column: Any, bounds: Range, scale: float = 1.0) -> list[ColumnElement[bool]]:
    """Bounds on the value as shown (rounded up to a whole number, as Daytona's
    integer `cpu` and `memory`): ceil(v) >= low is v > ceil(low) - 1, ceil(v) <= high
    is v <= floor(high). Compared as floats: a bound past what an integer column holds
    (`minMemoryGiB=5e16`, scaled to MB) or an infinite one still compares, where an
    integer parameter would overflow the database's."""
    out = []
    if bounds.low is not None:
        out.append(column > (_whole(math.ceil, bounds.low) - 1) * scale)
    if bounds.high is not None:
        out.append(column <= _whole(math.floor, bounds.high) * scale)
    return out


def _whole(rounding: Callable[[float], int], value: float) -> float:
    return float(rounding(value)) if math.isfinite(value) else value


def _times(column: Any, bounds: TimeRange) -> list[ColumnElement[bool]]:
    out = []
    if bounds.after is not None:
        out.append(column >= bounds.after)
    if bounds.before is not None:
        out.append(column <= bounds.before)
    return out


def _prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(escaped + "%", escape="\\")


def _errored_deleted() -> ColumnElement[bool]:
    return and_(_TABLE.state == EnvState.ERROR, _TABLE.desired_state == DesiredState.DELETED)


def _states(search: EnvironmentSearch) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = [_TABLE.state != EnvState.DELETED]
    if search.states is not None:
        out.append(_TABLE.state.in_(list(search.states)))
    if not search.include_errored_deleted:
        out.append(not_(_errored_deleted()))
    return out


def _recoverable(wanted: bool) -> ColumnElement[bool]:
    recoverable = and_(_TABLE.state == EnvState.ERROR, _TABLE.desired_state != DesiredState.DELETED)
    return recoverable if wanted else not_(recoverable)


def _filters(search: EnvironmentSearch) -> list[ColumnElement[bool]]:
    out = _states(search)
    if search.id_prefix:
        out.append(_prefix(_TABLE.id, search.id_prefix))
    if search.name_prefix:
        out.append(_prefix(_TABLE.name, search.name_prefix))
    for key, value in search.labels.items():
        out.append(_TABLE.labels[key].as_string() == value)
    if search.images is not None:
        out.append(_TABLE.image.in_(list(search.images)))
    out += _whole_range(_TABLE.cpu, search.cpu)
    out += _whole_range(_TABLE.memory_mb, search.memory_gb, 1024)
    out += _whole_range(_TABLE.disk_gb, search.disk_gb)
    out += _whole_range(_TABLE.gpu, search.gpu)
    if search.public is not None:
        out.append(_TABLE.public.is_(search.public))
    if search.recoverable is not None:
        out.append(_recoverable(search.recoverable))
    out += _times(_TABLE.created_at, search.created)
    out += _times(_TABLE.last_activity_at, search.last_activity)
    out += _times(_TABLE.auto_destroy_at, search.auto_destroy)
    return out


def search_statement(
    search: EnvironmentSearch,
    org_id: str,
    only_ids: frozenset[str] | None,
    columns: Sequence[str],
) -> Select[Any]:
    """`limit + 1` rows from `offset` (the extra row tells whether there is more)."""
    query = select(*(_TABLE[name] for name in columns)).where(
        _TABLE.org_id == org_id, _TABLE.pool_key.is_(None), *_filters(search)
    )
    if only_ids is not None:
        query = query.where(_TABLE.id.in_(list(only_ids)))
    key = _SORT[search.sort]
    order = key.desc() if search.descending else key.asc()
    tie = _TABLE.id.desc() if search.descending else _TABLE.id.asc()
    return query.order_by(order.nulls_last(), tie).offset(search.offset).limit(search.limit + 1)


async def search_rows(
    session: AsyncSession,
    search: EnvironmentSearch,
    org_id: str,
    only_ids: frozenset[str] | None,
    columns: Sequence[str],
) -> list[dict[str, Any]]:
    if search.matches_nothing:
        return []
    result = await session.execute(search_statement(search, org_id, only_ids, columns))
    return [dict(zip(columns, row, strict=True)) for row in result]


async def ttl_expired(session: AsyncSession, now: datetime) -> list[Env]:
    """Environments whose TTL has run out and that are not on their way out yet."""
    query = select(Env).where(
        Env.auto_destroy_at <= now,
        Env.state.not_in((EnvState.DELETING, EnvState.DELETED)),
        Env.desired_state != DesiredState.DELETED,
    )
    return list((await session.execute(query)).scalars())
