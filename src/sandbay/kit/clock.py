"""The clock: every timestamp sandbay writes is timezone-aware UTC, and the
per-state timestamps of a state machine are data (`stamp`)."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

S = TypeVar("S")


def utcnow() -> datetime:
    return datetime.now(UTC)


def stamp(row: object, stamps: Mapping[S, tuple[str, ...]], state: S, now: datetime) -> None:
    """Set the timestamp attributes `stamps` names for entering `state` to `now`."""
    for name in stamps.get(state, ()):
        setattr(row, name, now)
