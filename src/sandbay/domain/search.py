"""A filtered, sorted listing of an organization's environments (what Daytona's
`GET /sandbox` asks): every filter optional, one sort field and direction, and an
opaque cursor. Pure: the query is built in the db layer."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sandbay.domain.states import EnvState


class SortField(StrEnum):
    NAME = "name"
    CPU = "cpu"
    MEMORY = "memory"
    DISK = "disk"
    LAST_ACTIVITY_AT = "last_activity_at"
    CREATED_AT = "created_at"


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds; None: open on that side."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class TimeRange:
    after: datetime | None = None
    before: datetime | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentSearch:
    """`states` None means every state but `deleted`; an empty tuple matches nothing
    (asked only for states sandbay does not have). `include_errored_deleted` adds the
    environments that failed while being deleted."""

    id_prefix: str | None = None
    name_prefix: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    states: tuple[EnvState, ...] | None = None
    include_errored_deleted: bool = False
    images: tuple[str, ...] | None = None
    cpu: Range = Range()
    memory_gb: Range = Range()
    disk_gb: Range = Range()
    gpu: Range = Range()
    public: bool | None = None
    recoverable: bool | None = None
    created: TimeRange = TimeRange()
    last_activity: TimeRange = TimeRange()
    auto_destroy: TimeRange = TimeRange()
    sort: SortField = SortField.LAST_ACTIVITY_AT
    descending: bool = True
    limit: int = 100
    offset: int = 0
    matches_nothing: bool = False  # a filter on something sandbay has none of
