"""Configuration (env prefix `SANDBAY_`). A Settings object is built by the entry
point and passed down; nothing reads the environment at import time.

Installation-wide knobs sit at the top; each background job and each capability
has its own section, read with `__` between section and field
(`SANDBAY_RECONCILER__INTERVAL`, `SANDBAY_SSH__PORT`, or a whole section as JSON:
`SANDBAY_SSH='{"port": 0}'`). The flat names of before the sections
(`SANDBAY_RECONCILE_INTERVAL`, `SANDBAY_SSH_PORT`, …: `FLAT_NAMES`) still work, are
deprecated and kept for one release; a nested name given too wins over its flat one."""

import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from sandbay.domain.pools import WarmPoolSpec
from sandbay.domain.runtime import Runtime

log = logging.getLogger(__name__)


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "sandbay"


def default_agent_dir() -> Path:
    """Where scripts/build-envd.sh puts the environment agent: build/envd in the tree."""
    return Path(__file__).resolve().parents[2] / "build" / "envd"


class _Section(BaseModel):
    # A misspelt nested name (SANDBAY_SSH__PROT) is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class ReconcilerSettings(_Section):
    """The desired-state reconciler and its two watchdogs (policies, drift)."""

    enabled: bool = Field(
        True, description="Run the reconciler loops in this process (see `sandbay reconciler`)"
    )
    interval: float = Field(
        1.0, gt=0, description="Seconds between sweeps (the reconciler is also woken by changes)"
    )
    concurrency: int = Field(32, ge=1, le=1024, description="Environments worked on at once")
    lease_seconds: float = Field(
        15.0, gt=1, description="Lease on an environment; a crashed holder's work resumes after it"
    )
    policy_interval: float = Field(
        5.0, gt=0, description="Seconds between policy checks (auto-stop, TTLs, hang detector)"
    )
    deadline_scale: float = Field(
        1.0, gt=0, description="Multiplies the transient-state deadlines of the hang detector"
    )
    drift_interval: float = Field(10.0, gt=0, description="Seconds between engine scans")
    runner_interval: float = Field(
        2.0, gt=0, description="Seconds between looks at the Swarm's nodes (many hosts)"
    )
    orphan_grace: float = Field(
        60.0, ge=0, description="Age (s) before an orphan container or volume is removed"
    )


class PoolSettings(_Section):
    warm: list[WarmPoolSpec] = Field(
        default_factory=list,
        description='Warm pools, e.g. [{"org": "default", "size": 5, "memory_mb": 1024}]',
    )
    interval: float = Field(1.0, gt=0, description="Seconds between pool refills")


class ArchiveSettings(_Section):
    dir: Path | None = Field(None, description="Archive store; default DATA_DIR/archives")
    s3_url: str | None = Field(
        None, description="s3://bucket/prefix: archive to an S3-compatible bucket instead"
    )
    s3_endpoint: str | None = Field(None, description="S3 endpoint (MinIO, Ceph, …)")
    s3_region: str | None = Field(None, description="S3 region; default the client's")


class ObjectStorageSettings(_Section):
    """S3-compatible object storage that receives build contexts: the local files of
    the Daytona SDK's `Image.add_local_file`, `add_local_dir`,
    `pip_install_from_requirements` and a Dockerfile's COPY/ADD. The SDK is handed
    this key at `/object-storage/push-access` and uploads to
    `{bucket}/{prefix}{org}/{hash}/context.tar`; the builder reads the same objects.
    Give a key allowed only s3:PutObject, s3:GetObject and s3:ListBucket on that
    bucket and prefix: every caller that may build gets it, unless
    `scoped_credentials` mints each organization a temporary key limited to its own
    prefix. Unset `bucket`: such builds are refused (400). Endpoint and region
    default to the archive's."""

    bucket: str | None = Field(
        None, description="Bucket for build contexts; unset: builds with local files are refused"
    )
    prefix: str = Field(
        "build-contexts/",
        pattern=r"^([A-Za-z0-9._-]+/)*$",
        description="Key prefix in the bucket (empty or ending in /)",
    )
    endpoint: str | None = Field(
        None, description="S3 endpoint the server uses; default `archive.s3_endpoint`, else AWS"
    )
    public_endpoint: str | None = Field(
        None, description="S3 endpoint handed to SDK clients; default `endpoint`"
    )
    region: str | None = Field(
        None, description="S3 region; default `archive.s3_region`, else us-east-1"
    )
    access_key_id: str | None = Field(
        None, description="Key handed to SDK clients and used by the builder"
    )
    secret_access_key: SecretStr | None = Field(None, description="… its secret")
    scoped_credentials: bool = Field(
        False,
        description="Hand each organization temporary credentials (STS AssumeRole with a "
        "session policy limited to its prefix: AWS, MinIO) instead of the key itself",
    )
    role_arn: str = Field(
        "arn:aws:iam::000000000000:role/sandbay-build-contexts",
        description="Role the key assumes for scoped credentials (AWS; MinIO ignores it)",
    )
    sts_endpoint: str | None = Field(
        None, description="STS endpoint for scoped credentials; default `endpoint` (MinIO's)"
    )
    session_seconds: int = Field(
        3600, ge=900, le=43200, description="Lifetime of scoped credentials"
    )

    @model_validator(mode="after")
    def _key_with_bucket(self) -> "ObjectStorageSettings":
        # The key is handed out: never fall back to the server's own credentials.
        if self.bucket and not (self.access_key_id and self.secret_access_key):
            raise ValueError("a bucket needs access_key_id and secret_access_key (given to SDKs)")
        return self


class WorkSettings(_Section):
    """Work items on self-hosted environments: heartbeat leases."""

    lease_interval: float = Field(
        1.0, gt=0, description="Seconds between sweeps for expired work-item leases"
    )
    min_ttl_seconds: int = Field(10, ge=1, description="Shortest heartbeat lease")
    max_ttl_seconds: int = Field(600, ge=1, description="Longest heartbeat lease")
    default_ttl_seconds: int = Field(
        60, ge=1, description="Lease given by ack, and by a heartbeat that asks for none"
    )


class InsideSettings(_Section):
    """Inside environments: the environment agent, exec and background processes."""

    agent_dir: Path = Field(
        default_factory=default_agent_dir,
        description="Host directory holding the environment agent `envd` (mounted "
        "read-only at /.sandbay in every environment)",
    )
    agent_ready_timeout: float = Field(
        30.0, gt=0, description="Seconds a start waits for the environment's agent to answer"
    )

    exec_default_timeout: float = Field(
        600.0, gt=0, description="Seconds an exec may run when the request names no timeout"
    )
    exec_output_limit_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Bytes of each stream a non-streaming exec keeps; the rest is dropped",
    )
    process_output_limit_bytes: int = Field(
        1024 * 1024, ge=1024, description="Bytes of each stream a background process keeps"
    )
    processes_kept_exited: int = Field(
        16, ge=0, description="Exited background processes kept per environment"
    )


class MetricsSettings(_Section):
    interval: float = Field(
        10.0, ge=0, description="Seconds between resource samples; 0 turns the collector off"
    )
    retention_hours: float = Field(24.0, gt=0, description="Hours of samples kept")
    from_cgroups: bool = Field(
        True, description="Read cgroup files when the engine is local (else its stats API)"
    )


class SshSettings(_Section):
    enabled: bool = Field(True, description="Run the SSH gateway with the server")
    port: int = Field(2222, ge=0, le=65535, description="SSH gateway port (0: any free)")
    bind: str | None = Field(None, description="SSH gateway bind address; default `host`")
    public_host: str | None = Field(
        None, description="Host name in SSH credentials; default the API request's host"
    )
    public_port: int | None = Field(
        None, description="Port in SSH credentials (behind NAT or a load balancer); default `port`"
    )
    host_key: Path | None = Field(
        None, description="Gateway host key; default DATA_DIR/ssh_host_ed25519_key (made once)"
    )
    credential_ttl: float = Field(
        3600.0, gt=0, description="Seconds a credential is valid when the request names none"
    )
    credential_max_ttl: float = Field(
        7 * 24 * 3600.0, gt=0, description="Longest validity (s) a credential may ask for"
    )
    sweep_interval: float = Field(
        5.0, gt=0, description="Seconds between checks that close stopped or revoked sessions"
    )


class PreviewSettings(_Section):
    domain: str = Field(
        "localhost",
        description="Preview host names are {port}-{id}.{domain} (*.localhost resolves to "
        "loopback in browsers); empty turns host-based routing off",
    )
    port: int | None = Field(
        None, description="Port in preview URLs; default the API request's port"
    )
    token_ttl: float = Field(
        24 * 3600.0, gt=0, description="Seconds a token is valid when the request names none"
    )
    token_max_ttl: float = Field(
        30 * 24 * 3600.0, gt=0, description="Longest validity (s) a token may ask for"
    )


class NetworkSettings(_Section):
    policy_interval: float = Field(
        30.0, gt=0, description="Seconds between re-enforcements of network policies"
    )
    egress_hosts: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Names the egress resolver answers from this map (name → IPv4 "
        "addresses) before asking the host's resolver; JSON in the environment",
    )
    egress_ca_bundle: Path | None = Field(
        None,
        description="More CAs (a PEM file) the egress proxy trusts when it re-encrypts "
        "to a real host, besides the system's",
    )


class AgentSettings(_Section):
    """AI agents inside environments: runs and OpenClaw instances."""

    image: str = Field(
        "sandbay-agent:latest", description="Image with Node and the agent CLIs (make agents-image)"
    )
    timeout: float = Field(
        1800.0, gt=0, description="Seconds an agent run may last when the request names none"
    )
    runs_kept_events: int = Field(
        5000, ge=10, description="Events of one agent run kept in its transcript"
    )
    public_url: str | None = Field(
        None,
        description="Base of an OpenClaw instance's `gateway_url` "
        "({public_url}/preview/{id}/18789/); default the API request's base URL",
    )
    relay_bind: str | None = Field(
        None,
        description="Address of the model relay's own listener, which agents inside "
        "environments call instead of their provider (docs/model-relay.md); default the "
        "gateway of the engine's bridge network; empty: no relay",
    )
    relay_port: int = Field(0, ge=0, le=65535, description="Its port; 0: a free port")
    relay_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="Base URL environments are told for the relay (behind a proxy or on "
        "another network); default http://{relay_bind}:{port}",
    )


class HttpSettings(_Section):
    """How clients reach the API: the base of every URL it hands out (toolbox, preview
    and SSH addresses of the dialects) when it sits behind a TLS reverse proxy."""

    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="Base URL clients use (e.g. https://sandbay.example.com); wins over "
        "the request and its forwarded headers",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated peers (IPs or CIDRs, * for any) whose "
        "X-Forwarded-Proto and X-Forwarded-Host are believed (as uvicorn's "
        "--forwarded-allow-ips); empty: none",
    )


class DialectSettings(_Section):
    camposcloud_runtime_images: dict[str, str] = Field(
        default_factory=dict,
        description='CamposCloud runtimeEnvironment → image, e.g. {"nodejs": "node:22"}; '
        "a runtime not listed runs on default_image",
    )


class LimitsSettings(_Section):
    """Request limits of the API: token buckets per key and per organization (kept in
    each server process's memory: with several replicas each allows the rate), and
    how long an `Idempotency-Key`'s answer is kept. A rate of 0 turns a bucket off."""

    key_rate: float = Field(2000.0, ge=0, description="Requests per second one API key may make")
    key_burst: int = Field(10000, ge=1, description="Requests one API key may make at once")
    org_rate: float = Field(
        5000.0, ge=0, description="Requests per second one organization's keys may make"
    )
    org_burst: int = Field(20000, ge=1, description="Requests an organization may make at once")
    idempotency_ttl: float = Field(
        86400.0, gt=0, description="Seconds an Idempotency-Key's answer is replayed"
    )
    idempotency_wait: float = Field(
        30.0,
        ge=0,
        description="Seconds a retry waits for the first request with its key to answer "
        "before a 409 (in progress)",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SANDBAY_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Data directory (SQLite file, host key, archives, secrets key)",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in the data dir"
    )
    sqlite_inline: bool = Field(
        True, description="SQLite calls on the event loop (no aiosqlite worker threads)"
    )
    docker_host: str | None = Field(
        None,
        description="Docker endpoint; default: DOCKER_HOST. A Swarm manager's endpoint "
        "makes every Swarm node a runner (sandbay runner ls)",
    )
    engine_threads: int = Field(
        64, ge=4, le=1024, description="Threads for blocking Docker SDK calls"
    )
    default_image: str = Field(
        "sandbay-base:latest", description="Image of an environment whose create names none"
    )
    default_runtime: Runtime = Field(
        Runtime.RUNC,
        description="Container runtime of a create that names none in an organization "
        "without a default: runc, or runsc (gVisor, installed by `make setup`)",
    )
    disk_limits: bool = Field(
        True,
        description="Enforce each environment's disk_gb (root layer and /workspace on one "
        "ext4 disk of that size; needs root, a local overlay2 engine and loop devices)",
    )
    default_stop_timeout: float = Field(
        10.0, ge=0, description="Grace period (s) of a stop that names none"
    )
    wake_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="How long (s) a preview request or SSH login waits for a sleeping "
        "environment with wake_on_request to start and answer before it is refused",
    )
    bootstrap_key: SecretStr | None = Field(
        None, description="Ensure org `default` exists with this organization key"
    )
    admin_key: SecretStr | None = Field(None, description="Operator key for creating organizations")
    auth_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified key is trusted without a database read"
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key encrypting model-provider credentials at rest; default: "
        "generated once in DATA_DIR/secrets.key (replicas must share one: set it)",
    )
    runner_id: str = Field(
        default_factory=socket.gethostname, description="Id of this runner (host); default hostname"
    )
    instance: str | None = Field(
        None,
        description="Label value that scopes this installation's containers; "
        "default: derived from the database URL, so replicas on one database share it",
    )

    host: str = Field("127.0.0.1", description="Bind address of the API (and of the gateway)")
    port: int = Field(8080, description="Port of the API")
    log_level: str = Field("info", description="Logging level")
    tls_cert: Path | None = Field(None, description="Serve HTTPS with this certificate (PEM)")
    tls_key: Path | None = Field(None, description="… and this private key (PEM)")
    max_json_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest request body of every route but file uploads"
    )
    max_upload_body_bytes: int = Field(
        4 * 1024**3,
        ge=1024,
        description="Largest body of a file upload (native files routes, Daytona uploads)",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=4096,
        description="Largest request line plus headers (uvicorn's h11_max_incomplete_event_size)",
    )

    reconciler: ReconcilerSettings = Field(
        default_factory=ReconcilerSettings, description=ReconcilerSettings.__doc__
    )
    pools: PoolSettings = Field(default_factory=PoolSettings, description="Warm pools")
    archive: ArchiveSettings = Field(
        default_factory=ArchiveSettings, description="Where archived workspaces go"
    )
    object_storage: ObjectStorageSettings = Field(
        default_factory=ObjectStorageSettings, description=ObjectStorageSettings.__doc__
    )
    work: WorkSettings = Field(default_factory=WorkSettings, description=WorkSettings.__doc__)
    inside: InsideSettings = Field(
        default_factory=InsideSettings, description=InsideSettings.__doc__
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="The resource-metrics collector"
    )
    ssh: SshSettings = Field(default_factory=SshSettings, description="The SSH gateway")
    preview: PreviewSettings = Field(
        default_factory=PreviewSettings, description="Preview URLs and their tokens"
    )
    network: NetworkSettings = Field(
        default_factory=NetworkSettings, description="Network policies of environments"
    )
    agent: AgentSettings = Field(default_factory=AgentSettings, description=AgentSettings.__doc__)
    http: HttpSettings = Field(default_factory=HttpSettings, description=HttpSettings.__doc__)
    dialects: DialectSettings = Field(
        default_factory=DialectSettings, description="Seed dialects of other platforms' APIs"
    )
    limits: LimitsSettings = Field(
        default_factory=LimitsSettings, description=LimitsSettings.__doc__
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First source wins: arguments, nested names, then the deprecated flat names.
        flat = FlatNamesSource(settings_cls)
        return init_settings, env_settings, flat, dotenv_settings, file_secret_settings

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sandbay.db'}"

    def resolved_instance(self) -> str:
        if self.instance:
            return self.instance
        digest = hashlib.sha256(self.resolved_database_url().encode()).hexdigest()
        return f"i{digest[:12]}"


#: Deprecated flat name (after the prefix) → (section, field). Kept for one release.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "reconciler_enabled": ("reconciler", "enabled"),
    "reconcile_interval": ("reconciler", "interval"),
    "reconcile_concurrency": ("reconciler", "concurrency"),
    "lease_seconds": ("reconciler", "lease_seconds"),
    "policy_interval": ("reconciler", "policy_interval"),
    "deadline_scale": ("reconciler", "deadline_scale"),
    "drift_interval": ("reconciler", "drift_interval"),
    "orphan_grace": ("reconciler", "orphan_grace"),
    "warm_pools": ("pools", "warm"),
    "pool_interval": ("pools", "interval"),
    "archive_dir": ("archive", "dir"),
    "archive_s3_url": ("archive", "s3_url"),
    "archive_s3_endpoint": ("archive", "s3_endpoint"),
    "archive_s3_region": ("archive", "s3_region"),
    "work_lease_interval": ("work", "lease_interval"),
    "work_min_ttl_seconds": ("work", "min_ttl_seconds"),
    "work_max_ttl_seconds": ("work", "max_ttl_seconds"),
    "work_default_ttl_seconds": ("work", "default_ttl_seconds"),
    "exec_default_timeout": ("inside", "exec_default_timeout"),
    "exec_output_limit_bytes": ("inside", "exec_output_limit_bytes"),
    "process_output_limit_bytes": ("inside", "process_output_limit_bytes"),
    "processes_kept_exited": ("inside", "processes_kept_exited"),
    "metrics_interval": ("metrics", "interval"),
    "metrics_retention_hours": ("metrics", "retention_hours"),
    "metrics_from_cgroups": ("metrics", "from_cgroups"),
    "ssh_enabled": ("ssh", "enabled"),
    "ssh_port": ("ssh", "port"),
    "ssh_bind": ("ssh", "bind"),
    "ssh_public_host": ("ssh", "public_host"),
    "ssh_public_port": ("ssh", "public_port"),
    "ssh_host_key": ("ssh", "host_key"),
    "ssh_credential_ttl": ("ssh", "credential_ttl"),
    "ssh_credential_max_ttl": ("ssh", "credential_max_ttl"),
    "ssh_sweep_interval": ("ssh", "sweep_interval"),
    "preview_domain": ("preview", "domain"),
    "preview_port": ("preview", "port"),
    "preview_token_ttl": ("preview", "token_ttl"),
    "preview_token_max_ttl": ("preview", "token_max_ttl"),
    "network_policy_interval": ("network", "policy_interval"),
    "agent_image": ("agent", "image"),
    "agent_timeout": ("agent", "timeout"),
    "agent_runs_kept_events": ("agent", "runs_kept_events"),
    "public_url": ("agent", "public_url"),
    "camposcloud_runtime_images": ("dialects", "camposcloud_runtime_images"),
}


def env_name(*path: str | int) -> str:
    """The variable that sets a field: `env_name("ssh", "port")` → SANDBAY_SSH__PORT."""
    prefix = Settings.model_config.get("env_prefix", "")
    return prefix + "__".join(str(part) for part in path).upper()


def explain(exc: ValidationError) -> list[str]:
    """One line per error of a Settings build, naming the variable(s) that set the field."""
    flat_of = {target: flat for flat, target in FLAT_NAMES.items()}
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        depth = 2 if loc and _section(loc[0]) is not None else 1
        head, rest = loc[:depth], loc[depth:]
        name = env_name(*head)
        if len(head) == 2 and (flat := flat_of.get((head[0], head[1]))):
            name += f" (or {env_name(flat)})"
        where = "".join(f"[{part}]" for part in rest)
        lines.append(f"{name}{where}: {error['msg']} (got {error['input']!r})")
    return lines


def _section(name: str) -> type[BaseModel] | None:
    """The model of section `name`; None for a top-level field."""
    field = Settings.model_fields.get(name)
    model = field.annotation if field is not None else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


class FlatNamesSource(PydanticBaseSettingsSource):
    """The deprecated flat names, read into their sections (below the nested names)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the sections whole

    def __call__(self) -> dict[str, Any]:
        prefix = self.config.get("env_prefix", "").lower()
        environ = {key.lower(): value for key, value in os.environ.items()}
        found: dict[str, dict[str, Any]] = {}
        used: list[str] = []
        for flat, (section, name) in FLAT_NAMES.items():
            raw = environ.get(prefix + flat)
            if raw is None:
                continue
            model = _section(section)
            assert model is not None, section
            field = model.model_fields[name]
            found.setdefault(section, {})[name] = self._decode(flat, field, raw)
            higher = self.current_state.get(section)  # arguments and nested names
            ignored = (
                " (ignored: its new name is set too)"
                if isinstance(higher, dict) and name in higher
                else ""
            )
            used.append(f"{env_name(flat)} → {env_name(section, name)}{ignored}")
        if used:
            log.warning("deprecated setting names (kept for one release): %s", ", ".join(used))
        return found

    def _decode(self, flat: str, field: FieldInfo, raw: str) -> Any:
        if not self.field_is_complex(field):
            return raw
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"{env_name(flat)} is not valid JSON: {exc}") from exc
