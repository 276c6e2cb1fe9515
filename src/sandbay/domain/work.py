"""Work items (the Qoder brief): units of work queued on a self-hosted environment
and carried out by a worker the user runs. States, the allowed-transition table,
what each worker or user request means per state, and the API shapes. Pure."""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sandbay.domain.errors import Conflict, InvalidRequest, InvalidTransition


class WorkState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOPPED = "stopped"


W = WorkState

#: Every state but `stopped` is live: it may still be worked on or stopped.
LIVE: frozenset[WorkState] = frozenset({W.QUEUED, W.STARTING, W.ACTIVE, W.STOPPING})

#: Every allowed move. `starting|active → queued` is a lease that expired under the
#: re-queue policy; everything else is the brief's lifecycle.
TRANSITIONS: dict[WorkState, frozenset[WorkState]] = {
    W.QUEUED: frozenset({W.STARTING, W.STOPPED}),
    W.STARTING: frozenset({W.ACTIVE, W.STOPPING, W.STOPPED, W.QUEUED}),
    W.ACTIVE: frozenset({W.STOPPING, W.STOPPED, W.QUEUED}),
    W.STOPPING: frozenset({W.STOPPED}),
    W.STOPPED: frozenset(),
}


def check_transition(current: WorkState, target: WorkState) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"work item is {current.value}; it cannot move to {target.value}")


class LeasePolicy(StrEnum):
    """What happens to a started item whose worker stopped heartbeating."""

    REQUEUE = "requeue"  # back to `queued` for another worker, up to `max_attempts`
    STOP = "stop"  # straight to `stopped`, with the reason recorded


# ---- what each request means, per current state --------------------------------------


def decide_stop(state: WorkState, *, force: bool) -> WorkState | None:
    """The brief's stop table; None means "return the item as it is" (already stopped).

    force=false: queued → stopped; starting|active → stopping (the worker drains);
    stopping → stopped (the worker's confirmation); stopped → unchanged.
    force=true: any live state → stopped.
    """
    if state is W.STOPPED:
        return None
    if force:
        return W.STOPPED
    if state in (W.STARTING, W.ACTIVE):
        return W.STOPPING
    return W.STOPPED  # queued, stopping


def decide_ack(state: WorkState) -> WorkState | None:
    """Ack: queued → starting; safe to repeat while starting or active (None: no move)."""
    if state is W.QUEUED:
        return W.STARTING
    if state in (W.STARTING, W.ACTIVE):
        return None
    raise Conflict(f"work item is {state.value}; it cannot be acknowledged")


def decide_heartbeat(state: WorkState) -> WorkState | None:
    """Heartbeat: the first one moves starting → active; active and stopping only renew."""
    if state in (W.QUEUED, W.STOPPED):
        raise Conflict(f"work item is {state.value}; it cannot be heartbeated")
    return W.ACTIVE if state is W.STARTING else None


def decide_lease_expired(
    state: WorkState, policy: LeasePolicy, *, attempts: int, max_attempts: int
) -> tuple[WorkState, str] | None:
    """Where a live item goes when its worker's lease ran out, and why (None: no lease)."""
    if state is W.STOPPING:
        return W.STOPPED, "lease expired while stopping"
    if state not in (W.STARTING, W.ACTIVE):
        return None
    if policy is LeasePolicy.STOP:
        return W.STOPPED, "lease expired (policy: stop)"
    if attempts >= max_attempts:
        return W.STOPPED, f"lease expired; attempt limit reached ({attempts} of {max_attempts})"
    return W.QUEUED, f"lease expired; re-queued after attempt {attempts} of {max_attempts}"


# ---- worker protocol parameters -----------------------------------------------------

NO_HEARTBEAT: Final = "NO_HEARTBEAT"


@dataclass(frozen=True, slots=True)
class LeaseLimits:
    """Lease TTLs in whole seconds: a heartbeat asks for a TTL, clamped to
    [min_ttl, max_ttl]; `default_ttl` is the lease an ack gives (it covers the gap
    to the first heartbeat) and the one a heartbeat gets when it asks for none."""

    min_ttl: int = 10
    max_ttl: int = 600
    default_ttl: int = 60

    def clamp(self, desired: int | None) -> int:
        wanted = self.default_ttl if desired is None else desired
        return min(max(wanted, self.min_ttl), self.max_ttl)


def parse_expected_heartbeat(value: str | None) -> datetime | Literal["NO_HEARTBEAT"] | None:
    """`NO_HEARTBEAT`, an RFC 3339 timestamp, or None (an unconditional heartbeat)."""
    if value is None:
        return None
    if value == NO_HEARTBEAT:
        return NO_HEARTBEAT
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidRequest(
            "expected_last_heartbeat must be NO_HEARTBEAT or an RFC 3339 timestamp with a zone"
        )
    return parsed


def format_heartbeat(value: datetime) -> str:
    """Heartbeat timestamps always carry microseconds: they are echoed back as a lease
    token in `expected_last_heartbeat`."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- shapes ------------------------------------------------------------------------

_META_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
MAX_METADATA_KEYS = 64
MAX_METADATA_VALUE = 4096


def _check_metadata_keys(keys: list[str]) -> None:
    if len(keys) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys")
    for key in keys:
        if not _META_KEY_RE.match(key):
            raise ValueError(f"metadata key {key[:40]!r} must be 1-128 of [A-Za-z0-9._/:-]")


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    _check_metadata_keys(list(value))
    for key, val in value.items():
        if len(val) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata {key!r} is longer than {MAX_METADATA_VALUE} characters")
    return value


def _check_patch(value: dict[str, str | None]) -> dict[str, str | None]:
    _check_metadata({k: v for k, v in value.items() if v is not None})
    _check_metadata_keys(list(value))
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]
MetadataPatch = Annotated[dict[str, str | None], AfterValidator(_check_patch)]


class WorkItemCreate(BaseModel):
    """Queue a work item on a self-hosted environment."""

    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(
        default_factory=dict, description='Payload for the worker, e.g. {"type": "session", …}'
    )
    metadata: Metadata = Field(default_factory=dict, description="String-only map")
    on_lease_expired: LeasePolicy = Field(
        LeasePolicy.REQUEUE,
        description="When the worker's heartbeat lease runs out: re-queue (up to "
        "`max_attempts` acknowledged attempts) or stop",
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts before giving up")


class WorkMetadataUpdate(BaseModel):
    """Merge patch: string values upsert keys, null deletes them; omitted: no change."""

    model_config = ConfigDict(extra="forbid")

    metadata: MetadataPatch | None = None


class WorkStopRequest(BaseModel):
    """force=false (or no body): graceful stop, the worker drains and confirms;
    force=true: stopped at once."""

    model_config = ConfigDict(extra="forbid")

    force: bool = False


def parse_stop_body(raw: bytes) -> WorkStopRequest:
    """The stop body is optional: empty, `{}`, `{"force": false}` or `{"force": true}`.
    Anything that is not JSON is a 400, whatever its content type."""
    if not raw.strip():
        return WorkStopRequest()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("request body is not valid JSON") from exc
    if value is None:
        return WorkStopRequest()
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return WorkStopRequest.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidRequest(f"{where}: {first.get('msg', 'invalid')}") from exc


class WorkItem(BaseModel):
    """A work item as the native API shows it: the brief's object, plus the worker,
    lease and policy fields that explain what happened to it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    type: Literal["work"] = "work"
    environment_id: str
    data: dict[str, Any]
    state: WorkState
    created_at: datetime
    acknowledged_at: datetime | None
    started_at: datetime | None
    latest_heartbeat_at: datetime | None
    stop_requested_at: datetime | None
    stopped_at: datetime | None
    metadata: dict[str, str]
    worker_id: str | None = Field(description="Worker-ID of the last poll or ack")
    attempts: int = Field(description="Acknowledged attempts so far")
    max_attempts: int
    on_lease_expired: LeasePolicy
    lease_expires_at: datetime | None
    stop_reason: str | None = Field(description="Why it stopped, when not by a stop request")
    updated_at: datetime


class WorkItemList(BaseModel):
    data: list[WorkItem]
    has_more: bool
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class WorkHeartbeat(BaseModel):
    type: Literal["work_heartbeat"] = "work_heartbeat"
    last_heartbeat: str = Field(description="Echo it as `expected_last_heartbeat` next time")
    lease_extended: bool
    state: WorkState
    ttl_seconds: int = Field(description="The TTL applied, after clamping")


class WorkQueueStats(BaseModel):
    type: Literal["work_queue_stats"] = "work_queue_stats"
    depth: int = Field(description="Queued items claimable now")
    pending: int = Field(description="Queued items delivered recently but not acknowledged")
    oldest_queued_at: datetime | None
    workers_polling: int = Field(description="Distinct Worker-IDs that polled recently")


class WorkStats(WorkQueueStats):
    by_state: dict[WorkState, int] = Field(description="Items per state")
