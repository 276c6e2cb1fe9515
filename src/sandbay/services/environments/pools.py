"""Warm pools: creating members, claiming one for a matching create (a
compare-and-set, so one member serves one create), and reporting."""

from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import pools as queries
from sandbay.db.queries import tenancy as tenancy_queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.environments import EnvironmentCreate, EnvironmentKind
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.pools import WarmPoolSpec, WarmPoolStatus, pool_key
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.events.record import record_environment_event
from sandbay.services.tenancy.auth import require


async def claim(
    session: AsyncSession, key: str, body: EnvironmentCreate, name: str | None, actor: str
) -> EnvironmentModel | None:
    """Take a ready member of pool `key` and make it the requested environment
    (name, env, labels, policies); None when the pool is empty."""
    for env_id in await queries.pool_candidates(session, key):
        if not await queries.take_member(session, env_id, key):
            continue  # another create took it first
        env = await session.get(EnvironmentModel, env_id, populate_existing=True)
        if env is None:
            continue
        now = utcnow()
        env.name = name or env.id
        env.env, env.labels, env.public = body.env, body.labels, body.public
        env.auto_stop_interval = body.auto_stop_interval
        env.auto_archive_interval = body.auto_archive_interval
        env.auto_delete_interval = body.auto_delete_interval
        env.auto_restart, env.max_lifetime = body.auto_restart, body.max_lifetime
        env.pre_stop = body.pre_stop
        env.created_at = env.updated_at = env.started_at = env.last_activity_at = now
        record_environment_event(
            session, env, "environment.created", actor=actor, data={"image": env.image, "pool": key}
        )
        await session.flush()
        return env
    return None


async def resolve(
    session: AsyncSession, spec: WarmPoolSpec, default_image: str
) -> tuple[str, str] | None:
    """(org id, pool key) of a configured pool; None if its organization does not exist."""
    org_id = await tenancy_queries.org_id_named(session, spec.org)
    if org_id is None:
        return None
    image = spec.image or default_image
    return org_id, pool_key(org_id, image, spec.cpu, spec.memory_mb, spec.disk_gb, spec.pids_limit)


def new_member(
    org_id: str, key: str, spec: WarmPoolSpec, image: str, runner_id: str
) -> EnvironmentModel:
    """A fresh member: never auto-stopped, archived or deleted while it waits."""
    env_id = ids.new_id(ids.ENVIRONMENT)
    return EnvironmentModel(
        id=env_id, org_id=org_id, name=env_id, kind=EnvironmentKind.MANAGED, image=image,
        cpu=spec.cpu, memory_mb=spec.memory_mb, disk_gb=spec.disk_gb,
        pids_limit=spec.pids_limit, auto_stop_interval=0, auto_archive_interval=0,
        auto_delete_interval=-1, runner_id=runner_id, pool_key=key,
    )  # fmt: skip


async def status(
    session: AsyncSession, principal: Principal, specs: list[WarmPoolSpec], default_image: str
) -> list[WarmPoolStatus]:
    """The caller's organization's pools: configured size, ready and warming members."""
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    out = []
    for spec in specs:
        resolved = await resolve(session, spec, default_image)
        if resolved is None or resolved[0] != org_id:
            continue
        members = await queries.pool_members(session, resolved[1])
        ready = sum(1 for _, state in members if state is EnvState.RUNNING)
        out.append(
            WarmPoolStatus(
                key=resolved[1], image=spec.image or default_image, cpu=spec.cpu,
                memory_mb=spec.memory_mb, disk_gb=spec.disk_gb, pids_limit=spec.pids_limit,
                size=spec.size, ready=ready, warming=len(members) - ready,
            )
        )  # fmt: skip
    return out
