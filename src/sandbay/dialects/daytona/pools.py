"""Daytona's warm pools (`daytona.warm_pool.list/create/update/delete`) over
sandbay's: a pool keeps `pool` sandboxes of a snapshot created and started, so a
create of that snapshot that names no resources, OS user, volumes or network policy
answers `started` at once with one of them (env vars and labels are its own). Members
have the shape such a create gets (the native defaults); the one region is `local`,
and any other `target` is refused."""

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sandbay.api.deps import EnvironmentsDep, SessionDep
from sandbay.dialects.kit import iso_millis, whole_up
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.pools import MAX_POOL_SIZE, WarmPool
from sandbay.services.environments import made_pools

from .errors import DaytonaPrincipal
from .shapes import MIB_PER_GB, TARGET

router = APIRouter(prefix="/warm-pools", tags=["daytona"])

PoolId = Annotated[str, Path(alias="id", max_length=64, description="ID of the warm pool")]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaCreateWarmPool(_Camel):
    snapshot: str = Field(min_length=1, max_length=512)
    pool: int = Field(ge=1, le=MAX_POOL_SIZE)
    target: str | None = None


class DaytonaUpdateWarmPool(_Camel):
    pool: int = Field(ge=0, le=MAX_POOL_SIZE)


class DaytonaWarmPool(_Camel):
    id: str
    organization_id: str
    snapshot: str
    target: str
    pool: int
    current_size: int
    cpu: int
    mem: int = Field(description="GiB")
    disk: int = Field(description="GiB")
    os_user: str
    env: dict[str, str]
    error_reason: str | None = None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, pool: WarmPool) -> "DaytonaWarmPool":
        return cls(
            id=pool.id,
            organization_id=pool.org_id,
            snapshot=pool.snapshot,
            target=TARGET,
            pool=pool.size,
            current_size=pool.ready,
            cpu=whole_up(pool.cpu),
            mem=whole_up(pool.memory_mb / MIB_PER_GB),
            disk=pool.disk_gb,
            os_user="root",
            env={},
            created_at=iso_millis(pool.created_at) or "",
            updated_at=iso_millis(pool.updated_at) or "",
        )


@router.get("")
async def list_warm_pools(
    session: SessionDep, principal: DaytonaPrincipal
) -> list[DaytonaWarmPool]:
    """The organization's warm pools: desired size (`pool`) and ready members
    (`currentSize`)."""
    return [DaytonaWarmPool.of(p) for p in await made_pools.list_pools(session, principal)]


@router.post("", status_code=201)
async def create_warm_pool(
    body: DaytonaCreateWarmPool,
    session: SessionDep,
    principal: DaytonaPrincipal,
    environments: EnvironmentsDep,
) -> DaytonaWarmPool:
    """Keep `pool` sandboxes of `snapshot` ready (one pool per snapshot)."""
    if body.target not in (None, "", TARGET):
        raise InvalidRequest(
            f"target {body.target!r} is not available: the one region is {TARGET!r}"
        )
    pool = await made_pools.create_pool(
        session,
        principal,
        body.snapshot,
        body.pool,
        provider=environments.provider,
        placement=environments.placement,
    )
    return DaytonaWarmPool.of(pool)


@router.patch("/{id}")
async def update_warm_pool(
    pool_id: PoolId, body: DaytonaUpdateWarmPool, session: SessionDep, principal: DaytonaPrincipal
) -> DaytonaWarmPool:
    """A new desired size (0 drains the pool)."""
    return DaytonaWarmPool.of(await made_pools.resize_pool(session, principal, pool_id, body.pool))


@router.delete("/{id}", status_code=204)
async def delete_warm_pool(
    pool_id: PoolId, session: SessionDep, principal: DaytonaPrincipal
) -> Response:
    """Delete the pool and the sandboxes still waiting in it."""
    await made_pools.delete_pool(session, principal, pool_id)
    return Response(status_code=204)
