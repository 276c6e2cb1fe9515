"""Warm pools: per organization, image and resource shape, N environments kept
created and started, unassigned, so that a matching create answers `running` at
once. Members are fresh (never recycled) and belong to one organization."""

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sandbay.domain.environments import (
    DEFAULT_CPU,
    DEFAULT_DISK_GB,
    DEFAULT_MEMORY_MB,
    DEFAULT_PIDS_LIMIT,
    EnvironmentCreate,
    EnvironmentKind,
)


class WarmPoolSpec(BaseModel):
    """One pool, as configured by the operator (SANDBAY_WARM_POOLS, a JSON list)."""

    model_config = ConfigDict(extra="forbid")

    org: str = Field("default", description="Organization name")
    image: str | None = Field(None, description="Image; the server default if null")
    cpu: float = DEFAULT_CPU
    memory_mb: int = DEFAULT_MEMORY_MB
    disk_gb: int = DEFAULT_DISK_GB
    pids_limit: int = DEFAULT_PIDS_LIMIT
    size: int = Field(0, ge=0, le=1000)


#: Prefix of the ids of pools made through the API.
WARM_POOL_ID = "pool"
MAX_POOL_SIZE = 1000


class WarmPool(BaseModel):
    """A pool made through the API (Daytona's `/warm-pools`): members of `image` in
    the shape a create that names no resources gets, and how full it is."""

    id: str
    org_id: str
    snapshot: str = Field(description="The image or snapshot as asked for")
    image: str
    cpu: float
    memory_mb: int
    disk_gb: int
    pids_limit: int
    size: int = Field(ge=0, le=MAX_POOL_SIZE)
    ready: int
    warming: int
    created_at: datetime
    updated_at: datetime


class WarmPoolStatus(BaseModel):
    key: str
    image: str
    cpu: float
    memory_mb: int
    disk_gb: int
    pids_limit: int
    size: int
    ready: int
    warming: int


def pool_key(org_id: str, image: str, cpu: float, memory_mb: int, disk_gb: int, pids: int) -> str:
    shape = f"{org_id}|{image}|{cpu:g}|{memory_mb}|{disk_gb}|{pids}"
    return "pool-" + hashlib.sha256(shape.encode()).hexdigest()[:24]


def claim_key(org_id: str, image: str, body: EnvironmentCreate) -> str | None:
    """The pool a create could be served from, or None when it needs its own
    container (a workload of its own, another user, network policy, …)."""
    if (
        body.kind is not EnvironmentKind.MANAGED
        or body.command is not None
        or body.install_command is not None
        or body.user is not None
        or body.gpu
        or body.network_block_all
        or body.network_allow_list
        or body.network_domain_allow_list
        or body.network_domain_deny_list
        or body.secrets
    ):
        return None
    return pool_key(org_id, image, body.cpu, body.memory_mb, body.disk_gb, body.pids_limit)
