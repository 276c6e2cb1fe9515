"""Warm pools made through the API (Daytona's `/warm-pools`), beside the ones the
operator configures: created for an image or snapshot of the organization, in the
shape a create that names no resources gets, so such a create is served from a ready
member; resized (0 drains it) and deleted (its waiting members are deleted too). The
pool loop fills them as it fills the configured ones."""

from sandbay.db.models import EnvironmentModel, WarmPoolModel
from sandbay.db.queries import pools as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.environments import (
    DEFAULT_CPU,
    DEFAULT_DISK_GB,
    DEFAULT_MEMORY_MB,
    DEFAULT_PIDS_LIMIT,
)
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.pools import (
    MAX_POOL_SIZE,
    WARM_POOL_ID,
    WarmPool,
    WarmPoolSpec,
    WarmPoolStatus,
    pool_key,
)
from sandbay.domain.states import DesiredState, EnvState
from sandbay.kit.clock import utcnow
from sandbay.runtime.provider import RuntimeProvider
from sandbay.services.environments import pools
from sandbay.services.environments.records import Placement
from sandbay.services.environments.transitions import transition
from sandbay.services.images.service import plan_image
from sandbay.services.tenancy.auth import require, require_organization_wide
from sandbay.services.tenancy.quotas import admit

GONE = (EnvState.DELETING, EnvState.DELETED)


def key_of(row: WarmPoolModel) -> str:
    return pool_key(row.org_id, row.image, row.cpu, row.memory_mb, row.disk_gb, row.pids_limit)


async def _shown(session: AsyncSession, row: WarmPoolModel) -> WarmPool:
    members = await queries.pool_members(session, key_of(row))
    ready = sum(1 for _, state in members if state is EnvState.RUNNING)
    live = sum(1 for _, state in members if state not in GONE)
    return WarmPool(
        id=row.id, org_id=row.org_id, snapshot=row.snapshot, image=row.image, cpu=row.cpu,
        memory_mb=row.memory_mb, disk_gb=row.disk_gb, pids_limit=row.pids_limit,
        size=row.size, ready=ready, warming=live - ready, created_at=row.created_at,
        updated_at=row.updated_at,
    )  # fmt: skip


def _check_size(size: int, least: int) -> None:
    if not least <= size <= MAX_POOL_SIZE:
        raise InvalidRequest(f"a pool's size is {least} to {MAX_POOL_SIZE}")


async def _admit(session: AsyncSession, org_id: str, more: int) -> None:
    """The organization's quotas must hold `more` members besides what runs."""
    if more > 0:
        await admit(session, org_id, cpu=DEFAULT_CPU * more, memory_mb=DEFAULT_MEMORY_MB * more)


async def list_pools(session: AsyncSession, principal: Principal) -> list[WarmPool]:
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    return [await _shown(session, row) for row in await queries.made_pools(session, org_id)]


async def create_pool(
    session: AsyncSession,
    principal: Principal,
    snapshot: str,
    size: int,
    *,
    provider: RuntimeProvider,
    placement: Placement,
) -> WarmPool:
    """A pool of `size` members of `snapshot` (a snapshot of the organization or an
    image the runner has); one per image and shape, configured pools included."""
    org_id = require(principal, Permission.ENVIRONMENTS_WRITE)
    if principal.environment_ids is not None:
        raise InvalidRequest("a key restricted to given environments cannot make pools")
    _check_size(size, 1)
    planned = await plan_image(session, org_id, snapshot, None, default=placement.default_image)
    if not await provider.image_available(planned.ref):
        raise InvalidRequest(f"snapshot {snapshot!r} not found on the runner or its registry")
    row = WarmPoolModel(
        id=ids.new_id(WARM_POOL_ID), org_id=org_id, snapshot=snapshot, image=planned.ref,
        cpu=DEFAULT_CPU, memory_mb=DEFAULT_MEMORY_MB, disk_gb=DEFAULT_DISK_GB,
        pids_limit=DEFAULT_PIDS_LIMIT, size=size, created_at=utcnow(), updated_at=utcnow(),
    )  # fmt: skip
    taken = {key_of(other) for other in await queries.made_pools(session, org_id)}
    for spec in placement.warm_pools:
        resolved = await pools.resolve(session, spec, placement.default_image)
        if resolved is not None:
            taken.add(resolved[1])
    if key_of(row) in taken:
        raise Conflict(f"a warm pool for {snapshot!r} already exists")
    await _admit(session, org_id, size)
    session.add(row)
    await session.flush()
    return await _shown(session, row)


async def _own(session: AsyncSession, principal: Principal, pool_id: str) -> WarmPoolModel:
    org_id = require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
    row = await queries.made_pool(session, org_id, pool_id)
    if row is None:
        raise NotFound(f"warm pool {pool_id!r} not found")
    return row


async def resize_pool(
    session: AsyncSession, principal: Principal, pool_id: str, size: int
) -> WarmPool:
    """A new size: the loop adds members, or deletes the newest waiting ones."""
    _check_size(size, 0)
    row = await _own(session, principal, pool_id)
    await _admit(session, row.org_id, size - row.size)
    row.size, row.updated_at = size, utcnow()
    await session.flush()
    return await _shown(session, row)


async def delete_pool(session: AsyncSession, principal: Principal, pool_id: str) -> None:
    """Forget the pool and delete its members still waiting (claimed ones are
    ordinary environments by then)."""
    row = await _own(session, principal, pool_id)
    for env_id, state in await queries.pool_members(session, key_of(row)):
        env = await session.get(EnvironmentModel, env_id)
        if env is not None and state not in GONE:
            transition(
                session, env, EnvState.DELETING, actor=principal.actor,
                reason="its warm pool was deleted", desired=DesiredState.DELETED,
            )  # fmt: skip
    await session.delete(row)
    await session.flush()


async def pools_to_fill(session: AsyncSession) -> list[tuple[str, str, WarmPoolSpec]]:
    """(org id, pool key, spec) of every pool made through the API."""
    return [(row.org_id, key_of(row), spec_of(row)) for row in await queries.made_pools(session)]


def spec_of(row: WarmPoolModel) -> WarmPoolSpec:
    return WarmPoolSpec(
        image=row.image, cpu=row.cpu, memory_mb=row.memory_mb, disk_gb=row.disk_gb,
        pids_limit=row.pids_limit, size=row.size,
    )  # fmt: skip


async def statuses(session: AsyncSession, principal: Principal) -> list[WarmPoolStatus]:
    """The organization's pools made through the API, as the native API shows pools."""
    out = []
    for pool in await list_pools(session, principal):
        out.append(
            WarmPoolStatus(
                key=pool_key(
                    pool.org_id, pool.image, pool.cpu, pool.memory_mb, pool.disk_gb,
                    pool.pids_limit,
                ),
                image=pool.image, cpu=pool.cpu, memory_mb=pool.memory_mb,
                disk_gb=pool.disk_gb, pids_limit=pool.pids_limit, size=pool.size,
                ready=pool.ready, warming=pool.warming,
            )
        )  # fmt: skip
    return out
