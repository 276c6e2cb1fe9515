"""ORM models. `EnvironmentModel.version` is SQLAlchemy's version counter: every
UPDATE is a compare-and-set, so two concurrent writers cannot both win. State and
kind columns are typed with their enums (stored as their values in VARCHARs), and
a model owns the defaults of its bookkeeping columns, so a create lists only what
the caller chose."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from sandbay.db.base import Base, BigIntPK, JSONType, UTCDateTime, enum_values
from sandbay.domain.agents import AgentRunStatus
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.images import ImageState
from sandbay.domain.snapshots import SnapshotState
from sandbay.domain.states import DesiredState, EnvState
from sandbay.domain.volumes import VolumeState
from sandbay.domain.work import WorkState
from sandbay.kit.clock import utcnow


def _stamped(fields: dict[str, Any], *stamps: str) -> dict[str, Any]:
    """`fields` with each of `stamps` not given set to one and the same instant."""
    now = utcnow()
    for stamp in stamps:
        fields.setdefault(stamp, now)
    return fields


class OrganizationModel(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Quotas (null = unlimited). `quota_version` is bumped by every admission check so
    # concurrent creates/starts of one org are serialised by the row lock.
    max_running_environments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_running_cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_running_memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_running_hours_per_month: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_snapshots: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The runtime of environments created without one (null = the server's default).
    default_runtime: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ApiKeyModel(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    environment_ids: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EnvironmentModel(Base):
    __tablename__ = "environments"
    __table_args__ = (
        # A name is unique among an organization's live (not deleted) environments.
        Index(
            "uq_environments_org_name_live",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_environments_org_state", "org_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[EnvironmentKind] = mapped_column(enum_values(EnvironmentKind))

    # Specification
    image: Mapped[str] = mapped_column(String(512))
    command: Mapped[Any] = mapped_column(JSONType, nullable=True)
    install_command: Mapped[Any] = mapped_column(JSONType, nullable=True)
    env: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # Names removed in place (Daytona's update_env): the container still holds them,
    # so every process is spawned without them (domain.variables).
    env_unset: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default="[]")
    # The container runtime (runc, or runsc = gVisor); null = runc (rows before 0014).
    runtime: Mapped[str | None] = mapped_column(String(16), nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    gpu: Mapped[int] = mapped_column(Integer, default=0)
    pids_limit: Mapped[int] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    network_block_all: Mapped[bool] = mapped_column(Boolean, default=False)
    network_allow_list: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Egress by name (domain.egress): host-name patterns, and {ENV_VAR: secret name}
    # whose placeholders the environment sees (the proxy swaps in the real values).
    network_domain_allow_list: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default="[]"
    )
    network_domain_deny_list: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default="[]"
    )
    secrets: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict, server_default="{}")
    auto_pause_interval: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    auto_stop_interval: Mapped[float] = mapped_column(Float)
    auto_archive_interval: Mapped[float] = mapped_column(Float)
    auto_delete_interval: Mapped[float] = mapped_column(Float)
    auto_restart: Mapped[bool] = mapped_column(Boolean, default=False)
    wake_on_request: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    max_lifetime: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    pre_stop: Mapped[Any] = mapped_column(JSONType, nullable=True)

    # Lifecycle
    state: Mapped[EnvState] = mapped_column(enum_values(EnvState))
    desired_state: Mapped[DesiredState] = mapped_column(enum_values(DesiredState))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    runner_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: `host:port` of its agent for replicas on other hosts (a Swarm node's published
    #: port), set while it runs; None on one host.
    agent_endpoint: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: Set while the Swarm does not hear from its runner (RunnerWatch).
    runner_unreachable_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    # Crashes in a row that came soon after a start: the restart back-off grows with it.
    restart_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    running_seconds: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    # Parameters of the stop in progress (graceful stop is signal, grace period, kill).
    stop_signal: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stop_timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_force: Mapped[bool] = mapped_column(Boolean, default=False)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Daytona's TTL: deleted at this wall-clock time whatever its state (policies).
    auto_destroy_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)

    # The snapshot its root layer and /workspace are filled from before its first start.
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    # Set while the environment is an unclaimed warm-pool member (hidden from users).
    pool_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    # Reconciler bookkeeping: due time, lease and back-off.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # Latest resource sample (domain.metrics.ResourceMetrics as JSON), written by the
    # metrics collector without bumping `version`: a sample is not a state change.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Shared volumes it mounts (domain.volumes.VolumeMount as JSON, volume ids resolved).
    volumes: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default="[]"
    )

    __mapper_args__ = {"version_id_col": version}

    def __init__(self, **fields: Any) -> None:
        """A new environment is born `creating` toward `running` and due for the
        reconciler at once; its clocks start at one instant. The other bookkeeping
        columns (counters, stop parameters) take their column defaults."""
        fields.setdefault("state", EnvState.CREATING)
        fields.setdefault("desired_state", DesiredState.RUNNING)
        _stamped(
            fields,
            "created_at",
            "updated_at",
            "state_changed_at",
            "last_activity_at",
            "next_attempt_at",
        )
        super().__init__(**fields)


class EventModel(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_org_id_id", "org_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(64))
    environment_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageModel(Base):
    """A ledger of running time: one row per run (split at month boundaries), written
    when an environment leaves `running`. Sums give per-environment and per-org usage."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_org_period", "org_id", "period"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(64))
    environment_id: Mapped[str] = mapped_column(String(64), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM (UTC)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seconds: Mapped[float] = mapped_column(Float)
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int] = mapped_column(Integer)


class WorkItemModel(Base):
    """A work item on a self-hosted environment (the Qoder brief). `version` makes
    every ORM update a compare-and-set; the claim on poll is an explicit one."""

    __tablename__ = "work_items"
    __table_args__ = (
        # The queue: an environment's items in a state, oldest (lowest id) first.
        Index("ix_work_items_environment_id_state_id", "environment_id", "state", "id"),
        Index("ix_work_items_state_lease_expires_at", "state", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"))
    state: Mapped[WorkState] = mapped_column(enum_values(WorkState))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # `metadata` is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSONType, default=dict)

    # Policy for a lease that runs out, and how many acknowledged attempts it had.
    on_lease_expired: Mapped[str] = mapped_column(String(16))
    max_attempts: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    # Delivery (poll) and lease (ack, heartbeat).
    worker_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    latest_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stop_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    def __init__(self, **fields: Any) -> None:
        """A new item is born `queued`, created and updated at one instant."""
        fields.setdefault("state", WorkState.QUEUED)
        super().__init__(**_stamped(fields, "created_at", "updated_at"))


class WorkPollerModel(Base):
    """When each Worker-ID last polled an environment (queue stats: workers polling)."""

    __tablename__ = "work_pollers"

    environment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_poll_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EnvironmentMetricsModel(Base):
    """History of resource samples, for charts; pruned past the retention period."""

    __tablename__ = "environment_metrics"
    __table_args__ = (
        Index("ix_environment_metrics_env_time", "environment_id", "timestamp"),
        Index("ix_environment_metrics_time", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    environment_id: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    online: Mapped[bool] = mapped_column(Boolean)
    uptime_seconds: Mapped[int] = mapped_column(Integer)
    cpu_percent: Mapped[float] = mapped_column(Float)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    memory_limit_bytes: Mapped[int] = mapped_column(BigInteger)
    network_rx_bytes: Mapped[int] = mapped_column(BigInteger)
    network_tx_bytes: Mapped[int] = mapped_column(BigInteger)
    block_read_bytes: Mapped[int] = mapped_column(BigInteger)
    block_write_bytes: Mapped[int] = mapped_column(BigInteger)
    disk_used_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    disk_limit_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pids: Mapped[int] = mapped_column(Integer)


class SshCredentialModel(Base):
    """A short-lived SSH login to one environment. Only hashes are kept: the SHA-256
    of the password token and the fingerprint of the one-time key."""

    __tablename__ = "ssh_credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    environment_id: Mapped[str] = mapped_column(String(64), index=True)
    password_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_fingerprint: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PreviewTokenModel(Base):
    """A token that opens the preview URLs of a private environment (hash only)."""

    __tablename__ = "preview_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    environment_id: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A signed preview URL's token (it is the URL's host label or path segment, and
    # opens its port without a header); never accepted as a header token.
    signed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ModelProviderModel(Base):
    """An organization's model provider (issue 8). The credential is stored only as
    Fernet ciphertext; `secret_hint` is what the API may show of it."""

    __tablename__ = "model_providers"
    __table_args__ = (Index("uq_model_providers_org_name", "org_id", "name", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    models: Mapped[list[str]] = mapped_column(JSONType, default=list)
    default_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentRunModel(Base):
    """One agent run inside an environment and its transcript (events as JSON)."""

    __tablename__ = "agent_runs"
    __table_args__ = (Index("ix_agent_runs_environment_id_id", "environment_id", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    environment_id: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt: Mapped[str] = mapped_column(Text)
    cwd: Mapped[str] = mapped_column(String(4096))
    git_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    status: Mapped[AgentRunStatus] = mapped_column(enum_values(AgentRunStatus))
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    events: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AgentInstanceModel(Base):
    """An OpenClaw instance (the Chowder brief): an environment running the gateway.
    Its state is the environment's; this row holds what the instance adds."""

    __tablename__ = "agent_instances"

    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    model_provider: Mapped[str] = mapped_column(String(64))
    provider_name: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    openclaw_version: Mapped[str] = mapped_column(String(32))
    openclaw_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set once the gateway's configuration is written into the environment.
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ImageModel(Base):
    """A built image (Daytona's snapshot): an image the runner has, or one it builds
    from a Dockerfile in the background (`build_log` grows as it builds; the lease
    keeps two builders off one image)."""

    __tablename__ = "images"
    __table_args__ = (
        # A name is unique among an organization's images that are not deleted.
        Index(
            "uq_images_org_name_live",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_images_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(255))
    ref: Mapped[str] = mapped_column(String(512))
    dockerfile: Mapped[str | None] = mapped_column(Text, nullable=True)
    context_hashes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    entrypoint: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    state: Mapped[ImageState] = mapped_column(enum_values(ImageState))
    error_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    build_log: Mapped[str] = mapped_column(Text, default="")
    cpu: Mapped[float] = mapped_column(Float)
    gpu: Mapped[int] = mapped_column(Integer, default=0)
    memory_gb: Mapped[float] = mapped_column(Float)
    disk_gb: Mapped[int] = mapped_column(Integer)
    for_build: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    built_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("state", ImageState.PENDING)
        super().__init__(**_stamped(fields, "created_at", "updated_at"))


class VolumeModel(Base):
    """A shared volume of an organization. Its storage is an engine volume made when
    an environment first mounts it and removed after its delete (`pending_delete`)."""

    __tablename__ = "volumes"
    __table_args__ = (
        Index(
            "uq_volumes_org_name_live",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_volumes_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[VolumeState] = mapped_column(enum_values(VolumeState))
    error_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("state", VolumeState.READY)
        super().__init__(**_stamped(fields, "created_at", "updated_at"))


class SigningKeyModel(Base):
    """An environment's key for signed file URLs (Daytona's `download_url`): the
    client signs with it, so the server must read it back; stored as Fernet
    ciphertext only. Rotating replaces it, ending every URL signed before."""

    __tablename__ = "signing_keys"

    environment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    key_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WarmPoolModel(Base):
    """A warm pool made through the API (Daytona's `/warm-pools`), kept filled like
    the configured ones: `size` members of `image` in the native default shape."""

    __tablename__ = "warm_pools"
    __table_args__ = (Index("ix_warm_pools_org_id", "org_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    snapshot: Mapped[str] = mapped_column(String(512))
    image: Mapped[str] = mapped_column(String(512))
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    pids_limit: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EnvironmentSnapshotModel(Base):
    """A snapshot of an environment's root layer and /workspace, copied by the
    snapshots loop under a lease into the server's data dir. `settings` are the
    source's create fields (domain.snapshots.COPIED_SETTINGS), so it forks after
    its source is gone."""

    __tablename__ = "environment_snapshots"
    __table_args__ = (
        Index(
            "uq_environment_snapshots_org_name_live",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_environment_snapshots_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    environment_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[SnapshotState] = mapped_column(enum_values(SnapshotState))
    image: Mapped[str] = mapped_column(String(512))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    frozen_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("state", SnapshotState.CREATING)
        super().__init__(**_stamped(fields, "created_at", "updated_at"))


class IdempotencyKeyModel(Base):
    """The answer to the first request made with an `Idempotency-Key`, per
    organization, key and route (method and path). The row is claimed before the
    request runs (`status_code` null: in progress), so concurrent retries wait for
    that one answer; `fingerprint` (SHA-256 of the body) tells a reuse with another
    body apart."""

    __tablename__ = "idempotency_keys"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    route: Mapped[str] = mapped_column(String(512), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WebSessionModel(Base):
    """A dashboard sign-in: the SHA-256 of the session cookie's secret, for the API
    key it was exchanged for. The session acts as that key (revoking the key ends
    it) until it expires or is signed out (`ended_at`)."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OrgSecretModel(Base):
    """An organization's secret (issue 20): stored only as Fernet ciphertext. The
    environment sees `placeholder` (fixed per secret); the egress proxy swaps in the
    value on requests to `hosts` (every allowed host when empty)."""

    __tablename__ = "org_secrets"
    __table_args__ = (Index("uq_org_secrets_org_name", "org_id", "name", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    hosts: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default="[]")
    placeholder: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
