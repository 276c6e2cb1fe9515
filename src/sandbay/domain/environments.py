"""Shapes of an environment as the native API takes and gives it (snake_case JSON),
with the validation every surface shares."""

import ipaddress
import re
import shlex
import signal as _signal
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
)

from sandbay.domain.egress import check_patterns
from sandbay.domain.metrics import ResourceMetrics
from sandbay.domain.org_secrets import AttachedSecrets
from sandbay.domain.runtime import RecordedRuntime, Runtime
from sandbay.domain.states import HOLDS_MEMORY, DesiredState, EnvState
from sandbay.domain.volumes import Mounts, VolumeMount

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_ID_SHAPE = re.compile(r"^env_[0-9a-f]{32}$")
_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
RESERVED_LABEL_PREFIX = "sandbay."
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_ENV_VARS = 256
MAX_ENV_VALUE = 32 * 1024
MAX_COMMAND_CHARS = 64 * 1024

DEFAULT_CPU = 1.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_DISK_GB = 3
DEFAULT_PIDS_LIMIT = 4096
DEFAULT_AUTO_STOP_MINUTES = 15.0
DEFAULT_AUTO_ARCHIVE_MINUTES = 7 * 24 * 60.0
DEFAULT_STOP_TIMEOUT_S = 10.0
MAX_STOP_TIMEOUT_S = 3600.0


class EnvironmentKind(StrEnum):
    MANAGED = "managed"
    SELF_HOSTED = "self_hosted"


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with"
            " a letter or digit"
        )
    if _ENV_ID_SHAPE.match(value):
        raise ValueError("must not look like an environment id (env_ + 32 hex digits)")
    return value


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, val in value.items():
        if not _LABEL_KEY_RE.match(key):
            raise ValueError(f"label key {key[:40]!r} must be 1-128 of [A-Za-z0-9._/-]")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ValueError(f"label keys starting with {RESERVED_LABEL_PREFIX!r} are reserved")
        if len(val) > MAX_LABEL_VALUE:
            raise ValueError(f"label {key!r} is longer than {MAX_LABEL_VALUE} characters")
    return value


def _check_env(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ENV_VARS:
        raise ValueError(f"at most {MAX_ENV_VARS} variables")
    for key, val in value.items():
        if not _ENV_KEY_RE.match(key):
            raise ValueError(f"variable name {key[:40]!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if len(val) > MAX_ENV_VALUE or "\x00" in val:
            raise ValueError(f"variable {key!r} is too long or holds a NUL byte")
    return value


def _check_cidrs(value: list[str]) -> list[str]:
    if len(value) > 64:
        raise ValueError("at most 64 CIDRs")
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError as exc:
            raise ValueError(f"{item[:60]!r} is not a CIDR") from exc
    return out


def _check_image(value: str) -> str:
    if not _IMAGE_RE.match(value):
        raise ValueError("is not a valid image reference")
    return value


def _check_command(value: list[str] | str | None) -> list[str] | str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty")
        size = len(value)
    else:
        if not value or not value[0]:
            raise ValueError("argv must name a program")
        size = sum(len(a) for a in value)
        if any("\x00" in a for a in value):
            raise ValueError("argv must not hold NUL bytes")
    if size > MAX_COMMAND_CHARS:
        raise ValueError(f"is longer than {MAX_COMMAND_CHARS} characters")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
EnvVars = Annotated[dict[str, str], AfterValidator(_check_env)]
Cidrs = Annotated[list[str], AfterValidator(_check_cidrs)]
#: Host names and `*.` wildcards, normalized (lower case, IDNA, no trailing dot).
DomainPatterns = Annotated[list[str], AfterValidator(check_patterns)]
Image = Annotated[str, AfterValidator(_check_image)]
Command = Annotated[list[str] | str | None, AfterValidator(_check_command)]
#: Minutes; fractional minutes are allowed so tests need not wait whole minutes.
Minutes = Annotated[float, Field(ge=0, le=10 * 365 * 24 * 60)]
DeleteMinutes = Annotated[float, Field(ge=-1, le=10 * 365 * 24 * 60)]


class ImageBuild(BaseModel):
    """An image to build for the environment (a Dockerfile); it starts once built."""

    model_config = ConfigDict(extra="forbid")

    dockerfile: str = Field(min_length=1, max_length=256 * 1024)
    context_hashes: list[str] = Field(default_factory=list)


class EnvironmentCreate(BaseModel):
    """Create an environment. It starts at once (desired state `running`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(None, description="Unique in the organization; defaults to the id")
    image: Image | None = Field(None, description="Image (snapshot); the server default if null")
    command: Command = Field(
        None, description="The workload: argv list or shell string; default keeps it alive"
    )
    install_command: Command = Field(
        None, description="Runs before `command` at every start (e.g. installing dependencies)"
    )
    env: EnvVars = Field(default_factory=dict)
    labels: Labels = Field(default_factory=dict)
    user: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] | None = None
    kind: EnvironmentKind = EnvironmentKind.MANAGED
    cpu: float = Field(DEFAULT_CPU, gt=0, le=1024, description="CPU cores (may be fractional)")
    memory_mb: int = Field(DEFAULT_MEMORY_MB, ge=16, le=16 * 1024 * 1024)
    disk_gb: int = Field(DEFAULT_DISK_GB, ge=1, le=64 * 1024)
    gpu: int = Field(0, ge=0, le=64)
    pids_limit: int = Field(DEFAULT_PIDS_LIMIT, ge=16, le=4_194_304)
    public: bool = False
    network_block_all: bool = False
    network_allow_list: Cidrs = Field(default_factory=list)
    network_domain_allow_list: DomainPatterns = Field(
        default_factory=list,
        description="Only these host names (or `*.` wildcards) resolve and are reachable; "
        "enforced outside the environment by the platform's resolver and egress proxy",
    )
    network_domain_deny_list: DomainPatterns = Field(
        default_factory=list, description="These host names are never reachable"
    )
    secrets: AttachedSecrets = Field(
        default_factory=dict,
        description="{environment variable: secret name}: the variable holds the secret's "
        "placeholder, which the egress proxy swaps for the value on the secret's hosts",
    )
    auto_pause_interval: Minutes = Field(
        0,
        description="Minutes idle before auto-pause (memory kept, no CPU), a tier before "
        "auto-stop; 0 = never",
    )
    auto_stop_interval: Minutes = Field(
        DEFAULT_AUTO_STOP_MINUTES, description="Minutes idle before auto-stop; 0 = never"
    )
    auto_archive_interval: Minutes = Field(
        DEFAULT_AUTO_ARCHIVE_MINUTES, description="Minutes stopped before archiving; 0 = never"
    )
    auto_delete_interval: DeleteMinutes = Field(
        -1, description="Minutes stopped before deletion; 0 = at stop; -1 = never"
    )
    auto_restart: bool = Field(False, description="Restart the workload when it exits")
    wake_on_request: bool = Field(
        False,
        description="A preview request or SSH login to it while stopped, paused or "
        "archived starts it (the request waits, then is served)",
    )
    max_lifetime: Minutes = Field(
        0, description="Hard cap on one run, whatever the activity (minutes); 0 = none"
    )
    pre_stop: Command = Field(
        None, description="Runs inside the environment before the stop signal (within the grace)"
    )
    volumes: Mounts = Field(
        default_factory=list, description="Shared volumes of the organization to mount"
    )
    build: ImageBuild | None = Field(
        None, description="Build this Dockerfile and run it (instead of `image`)"
    )
    runtime: Runtime | None = Field(
        None,
        description="Container runtime: runc, or runsc (gVisor); default: the "
        "organization's default_runtime, else the server's",
    )
    snapshot: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None,
        description="A snapshot (id or name) to start from: its root layer, /workspace and "
        "settings (fields given here replace them; labels are merged). One still being "
        "made is waited for",
    )
    runner_labels: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=128)],
        Annotated[str, StringConstraints(max_length=256)],
    ] = Field(
        default_factory=dict,
        max_length=16,
        description="Place it only on a runner (Swarm node) with these node labels, e.g. "
        '{"region": "eu"}; it stays on the chosen runner for its life',
    )


class EnvironmentUpdate(BaseModel):
    """Change an environment's labels, lifecycle, preview and network policy; absent
    fields stay as they are. A network change applies to a running environment at
    once, without a restart."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    labels: Labels | None = None
    auto_pause_interval: Minutes | None = None
    auto_stop_interval: Minutes | None = None
    auto_archive_interval: Minutes | None = None
    auto_delete_interval: DeleteMinutes | None = None
    auto_restart: bool | None = None
    wake_on_request: bool | None = None
    max_lifetime: Minutes | None = None
    pre_stop: Command = None
    public: bool | None = Field(None, description="Preview URLs open without a token")
    network_block_all: bool | None = Field(
        None, description="No network at all; applied at once to a running environment"
    )
    network_allow_list: Cidrs | None = Field(
        None, description="Only these CIDRs are reachable ([] lifts the restriction)"
    )
    network_domain_allow_list: DomainPatterns | None = Field(
        None, description="Replace the allowed host names ([] lifts the restriction)"
    )
    network_domain_deny_list: DomainPatterns | None = Field(
        None, description="Replace the denied host names"
    )
    secrets: AttachedSecrets | None = Field(
        None,
        description="Replace the secrets given ({variable: secret name}); processes started "
        "afterwards see the new placeholders",
    )
    env: EnvVars | None = Field(
        None,
        description="Replace the variables; processes started afterwards (exec, sessions, "
        "SSH) see them, the running workload keeps its own",
    )


def _check_signal(value: str | None) -> str | None:
    if value is None:
        return None
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in _signal.Signals.__members__:
        raise ValueError(f"{value!r} is not a signal name")
    return name


class MoveRequest(BaseModel):
    """Where to move an archived environment (many hosts)."""

    model_config = ConfigDict(extra="forbid")

    runner_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        None, description="The runner (Swarm node id or hostname); default: the best other one"
    )


class StopRequest(BaseModel):
    """How to stop: a signal, a grace period, then a kill; `force` kills at once."""

    model_config = ConfigDict(extra="forbid")

    force: bool = False
    timeout: float | None = Field(
        None, ge=0, le=MAX_STOP_TIMEOUT_S, description="Grace period in seconds (default 10)"
    )
    signal: Annotated[str | None, AfterValidator(_check_signal)] = Field(
        None, description="Signal sent first (default SIGTERM)"
    )


class Environment(BaseModel):
    """An environment (sandbox) as the native API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    org_id: str
    kind: EnvironmentKind
    state: EnvState
    desired_state: DesiredState
    image: str
    command: list[str] | str | None
    install_command: list[str] | str | None
    env: dict[str, str]
    labels: dict[str, str]
    user: str | None
    cpu: float
    memory_mb: int
    disk_gb: int
    gpu: int
    pids_limit: int
    public: bool
    network_block_all: bool
    network_allow_list: list[str]
    network_domain_allow_list: list[str] = Field(default_factory=list)
    network_domain_deny_list: list[str] = Field(default_factory=list)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="{environment variable: secret name}"
    )
    auto_pause_interval: float = 0
    auto_stop_interval: float
    auto_archive_interval: float
    auto_delete_interval: float
    auto_restart: bool
    wake_on_request: bool = False
    max_lifetime: float
    pre_stop: list[str] | str | None
    runtime: RecordedRuntime = Field(description="Container runtime (runc, or runsc = gVisor)")
    runner_id: str | None
    runner_unreachable_since: datetime | None = Field(
        None,
        description="Set while its runner (a Swarm node) is down: calls on it answer 503 "
        "runner_unreachable; its state is what it was, and it converges when the node is back",
    )
    container_id: str | None
    error_message: str | None
    exit_code: int | None
    restart_count: int
    running_seconds: float = Field(description="Running time of past runs (seconds)")
    version: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    last_activity_at: datetime | None
    archived_at: datetime | None
    auto_destroy_at: datetime | None = Field(
        None, description="Deleted at this time whatever its state (a TTL); null: never"
    )
    metrics: ResourceMetrics | None = Field(
        None, description="Latest resource sample (live metrics); null before the first"
    )
    volumes: list[VolumeMount] = Field(default_factory=list, description="Mounted volumes")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def holds_memory(self) -> bool:
        """Its processes exist and hold their memory (running, or paused: frozen)."""
        return self.state in HOLDS_MEMORY

    @computed_field  # type: ignore[prop-decorator]
    @property
    def auto_stop_at(self) -> datetime | None:
        """When it stops unless there is activity (idle interval, or `max_lifetime`)."""
        if self.state not in (EnvState.RUNNING, EnvState.PAUSED):
            return None
        return auto_stop_deadline(
            last_activity_at=self.last_activity_at,
            auto_stop_interval=self.auto_stop_interval,
            started_at=self.started_at,
            max_lifetime=self.max_lifetime,
        )


def auto_stop_deadline(
    *,
    last_activity_at: datetime | None,
    auto_stop_interval: float,
    started_at: datetime | None,
    max_lifetime: float,
) -> datetime | None:
    """The earlier of idle-stop and lifetime-stop; None when neither applies."""
    deadlines = []
    if auto_stop_interval > 0 and last_activity_at is not None:
        deadlines.append(last_activity_at + timedelta(minutes=auto_stop_interval))
    if max_lifetime > 0 and started_at is not None:
        deadlines.append(started_at + timedelta(minutes=max_lifetime))
    return min(deadlines) if deadlines else None


class EnvironmentList(BaseModel):
    data: list[Environment]
    has_more: bool
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class Event(BaseModel):
    """One entry of the audit log: who did what to which object, from and to which state."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    org_id: str
    environment_id: str | None
    type: str
    actor: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    data: dict[str, Any]
    created_at: datetime


class EventList(BaseModel):
    data: list[Event]
    has_more: bool
    next_cursor: int | None = None


def hostname_for(name: str) -> str:
    """A valid hostname (RFC 1123 label) from an environment name."""
    label = re.sub(r"[^A-Za-z0-9-]", "-", name).strip("-")[:63].strip("-")
    return label or "sandbox"


def workload_argv(command: list[str] | str | None, install: list[str] | str | None) -> list[str]:
    """The container's argv: the install step (if any), then the workload. With
    neither there is none: the environment agent keeps the environment alive."""
    if install is None:
        if command is None:
            return []
        return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    install_sh = install if isinstance(install, str) else shlex.join(install)
    if command is None:
        run_sh = "exec sleep infinity"
    elif isinstance(command, str):
        run_sh = command
    else:
        run_sh = "exec " + shlex.join(command)
    return ["/bin/sh", "-c", f"{install_sh}\n{run_sh}"]


WaitState = Literal[
    "creating",
    "starting",
    "running",
    "pausing",
    "paused",
    "resuming",
    "stopping",
    "stopped",
    "archiving",
    "archived",
    "restoring",
    "deleting",
    "deleted",
    "error",
]
