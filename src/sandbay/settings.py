"""Configuration (env prefix `SANDBAY_`). A Settings object is built by the entry
point and passed down; nothing reads the environment at import time."""

import hashlib
import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "sandbay"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBAY_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in the data dir"
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
    reconcile_interval: float = Field(1.0, gt=0, description="Seconds between sweeps")
    reconcile_concurrency: int = Field(32, ge=1, le=1024)
    lease_seconds: float = Field(15.0, gt=1)
    engine_threads: int = Field(64, ge=4, le=1024)
    default_stop_timeout: float = Field(10.0, ge=0)

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

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sandbay.db'}"

    def resolved_instance(self) -> str:
        if self.instance:
            return self.instance
        digest = hashlib.sha256(self.resolved_database_url().encode()).hexdigest()
        return f"i{digest[:12]}"
