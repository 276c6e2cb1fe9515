"""Snapshots of an environment (its writable root layer and /workspace, copied at one
consistent point) and forks made from them: their states, the shapes the API takes
and gives, and the pure rules of what a fork inherits from its source."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbay.domain.environments import Environment, Labels, Name
from sandbay.domain.errors import QuotaExceeded

#: The most copies one fork request makes.
MAX_FORK_COUNT = 100

#: The source's settings a snapshot keeps, so it still forks after its source is
#: deleted: the fields of an `EnvironmentCreate`. SSH credentials, preview tokens and
#: agent tokens live in tables of their own and are never part of a snapshot; shared
#: volumes are the organization's and are mounted by name, so a fork mounts none.
COPIED_SETTINGS = (
    "image", "command", "install_command", "env", "labels", "user", "cpu", "memory_mb",
    "disk_gb", "gpu", "pids_limit", "public", "network_block_all", "network_allow_list",
    "network_domain_allow_list", "network_domain_deny_list", "secrets",
    "auto_pause_interval", "auto_stop_interval", "auto_archive_interval",
    "auto_delete_interval", "auto_restart", "wake_on_request", "max_lifetime", "pre_stop",
    "runtime",
)  # fmt: skip


class SnapshotState(StrEnum):
    CREATING = "creating"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"


#: States of a source whose files can be copied: a running one is frozen for the copy.
SNAPSHOTTABLE = ("running", "paused", "stopped")


class SnapshotCreate(BaseModel):
    """Snapshot an environment: its root layer and /workspace."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(
        None, description="Unique among the organization's snapshots; defaults to the id"
    )


class Snapshot(BaseModel):
    """A snapshot. `frozen_ms` is how long a running source was frozen for the copy
    (null for a stopped source); `size_bytes` what its files take on the runner."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    environment_id: str
    state: SnapshotState
    image: str
    size_bytes: int | None = None
    frozen_ms: float | None = None
    error: str | None = None
    created_at: datetime
    ready_at: datetime | None = None


class SnapshotList(BaseModel):
    data: list[Snapshot]
    #: What the organization's live snapshots take on the runner, and how many it may keep.
    total_bytes: int
    max_snapshots: int | None = None


class ForkRequest(BaseModel):
    """Fork a live environment: one snapshot (the source frozen only for the copy),
    then `count` new environments made from it."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, le=MAX_FORK_COUNT)
    name_prefix: Name | None = Field(
        None, description="Forks are named <prefix>-1 … <prefix>-N; default: their ids"
    )
    labels: Labels | None = Field(None, description="Added to (over) the source's labels")
    name: Name | None = Field(None, description="The fork's name (with `count` 1 only)")

    @model_validator(mode="after")
    def _one_name(self) -> "ForkRequest":
        if self.name is not None and (self.count != 1 or self.name_prefix is not None):
            raise ValueError("name names a single fork: count 1, no name_prefix")
        return self


class ForkResult(BaseModel):
    snapshot: Snapshot
    environments: list[Environment]


def settings_of(source: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot keeps of its source's settings (a row's columns by name). A
    variable the source unset in place is not passed on."""
    kept = {name: source.get(name) for name in COPIED_SETTINGS}
    unset = set(source.get("env_unset") or ())
    kept["env"] = {k: v for k, v in (source.get("env") or {}).items() if k not in unset}
    return kept


def fork_fields(settings: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The create fields of an environment made from a snapshot: its settings, with
    what the request gave explicitly over them (labels merged, the rest replaced)."""
    fields = {k: v for k, v in settings.items() if v is not None}
    for name, value in given.items():
        if name == "labels":
            fields["labels"] = {**(settings.get("labels") or {}), **(value or {})}
        else:
            fields[name] = value
    return fields


def fork_names(prefix: str | None, count: int, name: str | None = None) -> list[str | None]:
    if name is not None:
        return [name]
    if prefix is None:
        return [None] * count
    return [f"{prefix}-{i}" for i in range(1, count + 1)]


def check_snapshot_quota(live: int, limit: int | None, *, adding: int = 1) -> None:
    """Refuse a snapshot past the organization's `max_snapshots` (400 quota_exceeded)."""
    if limit is not None and live + adding > limit:
        raise QuotaExceeded(
            f"{live} of {limit} snapshots already kept; delete one (DELETE /v1/snapshots/{{id}})"
        )
