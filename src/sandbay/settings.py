"""Configuration (env prefix `SANDBAY_`). A Settings object is built by the entry
point and passed down; nothing reads the environment at import time."""

import hashlib
import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbay.domain.pools import WarmPoolSpec


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "sandbay"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBAY_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in the data dir"
    )
    sqlite_inline: bool = Field(
        True, description="SQLite calls on the event loop (no aiosqlite worker threads)"
    )
    default_image: str = "sandbay-base:latest"
    docker_host: str | None = Field(None, description="Docker endpoint; default: DOCKER_HOST")
    bootstrap_key: SecretStr | None = Field(
        None, description="Ensure org `default` exists with this organization key"
    )
    admin_key: SecretStr | None = Field(None, description="Operator key for creating organizations")
    runner_id: str = Field(default_factory=socket.gethostname)
    instance: str | None = Field(
        None,
        description="Label value that scopes this installation's containers; "
        "default: derived from the database URL, so replicas on one database share it",
    )

    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"

    # Reconciler
    reconciler_enabled: bool = Field(
        True, description="Run the reconciler loops in this process (see `sandbay reconciler`)"
    )
    reconcile_interval: float = Field(1.0, gt=0, description="Seconds between sweeps")
    policy_interval: float = Field(5.0, gt=0, description="Seconds between policy checks")
    drift_interval: float = Field(10.0, gt=0, description="Seconds between engine scans")
    orphan_grace: float = Field(60.0, ge=0, description="Age (s) before an orphan is removed")
    deadline_scale: float = Field(
        1.0, gt=0, description="Multiplies the transient-state deadlines of the hang detector"
    )
    archive_dir: Path | None = Field(None, description="Archive store; default DATA_DIR/archives")
    archive_s3_url: str | None = Field(
        None, description="s3://bucket/prefix: archive to an S3-compatible bucket instead"
    )
    archive_s3_endpoint: str | None = Field(None, description="S3 endpoint (MinIO, Ceph, …)")
    archive_s3_region: str | None = None
    reconcile_concurrency: int = Field(32, ge=1, le=1024)
    lease_seconds: float = Field(15.0, gt=1)
    engine_threads: int = Field(64, ge=4, le=1024)
    default_stop_timeout: float = Field(10.0, ge=0)

    warm_pools: list[WarmPoolSpec] = Field(
        default_factory=list,
        description='Warm pools, e.g. [{"org": "default", "size": 5, "memory_mb": 1024}]',
    )
    pool_interval: float = Field(1.0, gt=0, description="Seconds between pool refills")

    # Work items (self-hosted environments)
    work_lease_interval: float = Field(
        1.0, gt=0, description="Seconds between sweeps for expired work-item leases"
    )
    work_min_ttl_seconds: int = Field(10, ge=1, description="Shortest heartbeat lease")
    work_max_ttl_seconds: int = Field(600, ge=1, description="Longest heartbeat lease")
    work_default_ttl_seconds: int = Field(
        60, ge=1, description="Lease given by ack, and by a heartbeat that asks for none"
    )

    auth_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified key is trusted without a database read"
    )

    # Dialects
    camposcloud_runtime_images: dict[str, str] = Field(
        default_factory=dict,
        description='CamposCloud runtimeEnvironment → image, e.g. {"nodejs": "node:22"}; '
        "a runtime not listed runs on default_image",
    )

    # Limits of the API itself
    max_json_body_bytes: int = 256 * 1024

    # Inside environments: exec, process sessions, metrics
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
    metrics_interval: float = Field(
        10.0, ge=0, description="Seconds between resource samples; 0 turns the collector off"
    )
    metrics_retention_hours: float = Field(24.0, gt=0)
    metrics_from_cgroups: bool = Field(
        True, description="Read cgroup files when the engine is local (else its stats API)"
    )

    # Access from outside: SSH gateway, preview proxy, TLS, network policy
    ssh_enabled: bool = Field(True, description="Run the SSH gateway with the server")
    ssh_port: int = Field(2222, ge=0, le=65535, description="SSH gateway port (0: any free)")
    ssh_bind: str | None = Field(None, description="SSH gateway bind address; default `host`")
    ssh_public_host: str | None = Field(
        None, description="Host name in SSH credentials; default the API request's host"
    )
    ssh_public_port: int | None = Field(
        None, description="Port in SSH credentials (behind NAT or a load balancer)"
    )
    ssh_host_key: Path | None = Field(
        None, description="Gateway host key; default DATA_DIR/ssh_host_ed25519_key (made once)"
    )
    ssh_credential_ttl: float = Field(3600.0, gt=0, description="Seconds a credential is valid")
    ssh_credential_max_ttl: float = Field(7 * 24 * 3600.0, gt=0)
    ssh_sweep_interval: float = Field(
        5.0, gt=0, description="Seconds between checks that close stopped or revoked sessions"
    )
    preview_domain: str = Field(
        "localhost",
        description="Preview host names are {port}-{id}.{preview_domain} (*.localhost "
        "resolves to loopback in browsers); empty turns host-based routing off",
    )
    preview_port: int | None = Field(
        None, description="Port in preview URLs; default the API request's port"
    )
    preview_token_ttl: float = Field(24 * 3600.0, gt=0, description="Seconds a token is valid")
    preview_token_max_ttl: float = Field(30 * 24 * 3600.0, gt=0)
    tls_cert: Path | None = Field(None, description="Serve HTTPS with this certificate (PEM)")
    tls_key: Path | None = Field(None, description="… and this private key (PEM)")
    network_policy_interval: float = Field(
        30.0, gt=0, description="Seconds between re-enforcements of network policies"
    )

    # AI agents inside environments (issue 8)
    agent_image: str = Field(
        "sandbay-agent:latest", description="Image with Node and the agent CLIs (make agents-image)"
    )
    agent_timeout: float = Field(
        1800.0, gt=0, description="Seconds an agent run may last when the request names none"
    )
    agent_runs_kept_events: int = Field(
        5000, ge=10, description="Events of one agent run kept in its transcript"
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key encrypting model-provider credentials at rest; default: "
        "generated once in DATA_DIR/secrets.key (replicas must share one: set it)",
    )
    public_url: str | None = Field(
        None, description="Public base URL of this server (gateway and preview URLs)"
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sandbay.db'}"

    def resolved_instance(self) -> str:
        if self.instance:
            return self.instance
        digest = hashlib.sha256(self.resolved_database_url().encode()).hexdigest()
        return f"i{digest[:12]}"
