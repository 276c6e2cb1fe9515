"""`GET /sandbox`'s query (the SDK's `ListSandboxesQuery` and every parameter of the
generated `list_sandboxes`) as a native `EnvironmentSearch`. Daytona's state names
map to sandbay's; names sandbay has no counterpart for (`resizing`, `forking`, …)
match nothing rather than fail, as do sandbox classes (sandbay has none) and
regions other than its one target."""

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Query

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.search import EnvironmentSearch, Range, SortField, TimeRange
from sandbay.domain.states import EnvState
from sandbay.services.environments.search import offset_of

from .shapes import NATIVE_STATE, TARGET

#: Every state Daytona's API names (its SandboxState enum).
DAYTONA_STATES = frozenset(
    {
        "creating", "restoring", "destroyed", "destroying", "started", "stopped",
        "starting", "stopping", "error", "build_failed", "pending_build",
        "building_snapshot", "unknown", "pulling_snapshot", "archived", "archiving",
        "resizing", "snapshotting", "forking", "pausing", "paused", "resuming",
    }
)  # fmt: skip
SORT = {
    "name": SortField.NAME,
    "cpu": SortField.CPU,
    "memoryGib": SortField.MEMORY,
    "diskGib": SortField.DISK,
    "lastActivityAt": SortField.LAST_ACTIVITY_AT,
    "createdAt": SortField.CREATED_AT,
}
#: Every parameter of the generated client's `list_sandboxes`; others are refused.
LIST_PARAMS = frozenset(
    {
        "cursor", "limit", "id", "name", "labels", "includeErroredDeleted", "includeWarm",
        "states", "snapshots", "regionIds", "sandboxClasses", "minCpu", "maxCpu",
        "minMemoryGiB", "maxMemoryGiB", "minDiskGiB", "maxDiskGiB", "minGpu", "maxGpu",
        "isPublic", "isRecoverable", "createdAtAfter", "createdAtBefore", "lastEventAfter",
        "lastEventBefore", "autoDestroyAtAfter", "autoDestroyAtBefore", "sort", "order",
    }
)  # fmt: skip
SortName = Literal["name", "cpu", "memoryGib", "diskGib", "lastActivityAt", "createdAt"]
Many = Annotated[list[str] | None, Query()]


def states_of(names: list[str] | None) -> tuple[EnvState, ...] | None:
    if not names:
        return None
    unknown = sorted(set(names) - DAYTONA_STATES)
    if unknown:
        raise InvalidRequest(f"unknown state {unknown[0]!r}")
    return tuple(NATIVE_STATE[n] for n in dict.fromkeys(names) if n in NATIVE_STATE)


def labels_of(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise InvalidRequest("Invalid labels JSON format")
    return {str(k): v for k, v in parsed.items()}


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _times(after: datetime | None, before: datetime | None) -> TimeRange:
    return TimeRange(_utc(after), _utc(before))


def list_query(
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    id: Annotated[str | None, Query(max_length=128, description="ID prefix")] = None,
    name: Annotated[str | None, Query(max_length=128, description="Name prefix")] = None,
    labels: Annotated[str | None, Query(description="JSON-encoded labels to match")] = None,
    include_errored_deleted: Annotated[bool, Query(alias="includeErroredDeleted")] = False,
    include_warm: Annotated[bool, Query(alias="includeWarm")] = False,
    states: Many = None,
    snapshots: Many = None,
    region_ids: Annotated[list[str] | None, Query(alias="regionIds")] = None,
    sandbox_classes: Annotated[list[str] | None, Query(alias="sandboxClasses")] = None,
    min_cpu: Annotated[float | None, Query(alias="minCpu", ge=0)] = None,
    max_cpu: Annotated[float | None, Query(alias="maxCpu", ge=0)] = None,
    min_memory: Annotated[float | None, Query(alias="minMemoryGiB", ge=0)] = None,
    max_memory: Annotated[float | None, Query(alias="maxMemoryGiB", ge=0)] = None,
    min_disk: Annotated[float | None, Query(alias="minDiskGiB", ge=0)] = None,
    max_disk: Annotated[float | None, Query(alias="maxDiskGiB", ge=0)] = None,
    min_gpu: Annotated[float | None, Query(alias="minGpu", ge=0)] = None,
    max_gpu: Annotated[float | None, Query(alias="maxGpu", ge=0)] = None,
    is_public: Annotated[bool | None, Query(alias="isPublic")] = None,
    is_recoverable: Annotated[bool | None, Query(alias="isRecoverable")] = None,
    created_after: Annotated[datetime | None, Query(alias="createdAtAfter")] = None,
    created_before: Annotated[datetime | None, Query(alias="createdAtBefore")] = None,
    event_after: Annotated[datetime | None, Query(alias="lastEventAfter")] = None,
    event_before: Annotated[datetime | None, Query(alias="lastEventBefore")] = None,
    destroy_after: Annotated[datetime | None, Query(alias="autoDestroyAtAfter")] = None,
    destroy_before: Annotated[datetime | None, Query(alias="autoDestroyAtBefore")] = None,
    sort: SortName = "lastActivityAt",
    order: Literal["asc", "desc"] = "desc",
) -> EnvironmentSearch:
    """Daytona's list query. Unclaimed warm-pool members are never listed
    (`includeWarm` has nothing to add: they are no organization's yet)."""
    del include_warm
    wanted_states = states_of(states)
    nothing = (
        wanted_states == ()
        or bool(sandbox_classes)
        or (region_ids is not None and region_ids != [] and TARGET not in region_ids)
    )
    return EnvironmentSearch(
        id_prefix=id,
        name_prefix=name,
        labels=labels_of(labels),
        states=wanted_states,
        include_errored_deleted=include_errored_deleted,
        images=tuple(snapshots) if snapshots else None,
        cpu=Range(min_cpu, max_cpu),
        memory_gb=Range(min_memory, max_memory),
        disk_gb=Range(min_disk, max_disk),
        gpu=Range(min_gpu, max_gpu),
        public=is_public,
        recoverable=is_recoverable,
        created=_times(created_after, created_before),
        last_activity=_times(event_after, event_before),
        auto_destroy=_times(destroy_after, destroy_before),
        sort=SORT[sort],
        descending=order == "desc",
        limit=limit,
        offset=offset_of(cursor),
        matches_nothing=nothing,
    )
