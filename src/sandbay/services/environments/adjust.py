"""Changing an environment in place: its TTL (deleted at a wall-clock time whatever
its state; the policy loop enforces it), its variables for processes started from
now on, its CPU and memory (the engine changes the limits live), its activity
clock, and recovery from `error` (a start: the workspace volume survived)."""

from datetime import timedelta

from pydantic import ValidationError

from sandbay.db.cas import commit_or_conflict, with_cas_retry
from sandbay.db.models import EnvironmentModel
from sandbay.db.queries.environments import environment_from_model
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Environment, EnvironmentKind, EnvironmentUpdate
from sandbay.domain.errors import InvalidRequest, RuntimeFailure
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.resize import Size, plan_resize
from sandbay.domain.runtime import recorded_runtime
from sandbay.domain.states import DesiredState, EnvState
from sandbay.domain.variables import change_variables
from sandbay.kit.clock import utcnow
from sandbay.runtime.provider import RuntimeProvider
from sandbay.runtime.resources import Resizer
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.records import get_environment
from sandbay.services.events.record import record_environment_event
from sandbay.services.tenancy.quotas import admit

MIB = 1024 * 1024
MAX_TTL_MINUTES = 10 * 365 * 24 * 60


async def set_ttl(
    session: AsyncSession, principal: Principal, id_or_name: str, minutes: float
) -> Environment:
    """Delete the environment `minutes` from now, whatever its state; 0 clears it."""
    if not 0 <= minutes <= MAX_TTL_MINUTES:
        raise InvalidRequest(f"the TTL must be 0 to {MAX_TTL_MINUTES} minutes")

    async def attempt() -> EnvironmentModel:
        env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
        env.auto_destroy_at = utcnow() + timedelta(minutes=minutes) if minutes else None
        record_environment_event(
            session,
            env,
            "environment.ttl_set",
            actor=principal.actor,
            data={"minutes": minutes, "auto_destroy_at": _iso(env)},
        )
        await session.flush()
        return env

    return environment_from_model(await with_cas_retry(session, attempt))


def _iso(env: EnvironmentModel) -> str | None:
    return env.auto_destroy_at.isoformat() if env.auto_destroy_at else None


async def update_variables(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    *,
    set_: dict[str, str],
    unset: list[str],
    unset_value_prefix: str | None,
) -> Environment:
    """Unset names (and, with a prefix, every variable whose value starts with it and
    that `set_` does not name), then set; processes started afterwards see them, and
    no longer inherit an unset one from the container (`env_unset`)."""

    async def attempt() -> EnvironmentModel:
        env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
        change = change_variables(
            dict(env.env),
            list(env.env_unset or ()),
            set_=set_,
            unset=unset,
            unset_value_prefix=unset_value_prefix,
        )
        try:
            EnvironmentUpdate.model_validate({"env": change.env})
        except ValidationError as exc:
            raise InvalidRequest(exc.errors()[0]["msg"]) from exc
        env.env, env.env_unset = change.env, change.unset
        record_environment_event(
            session, env, "environment.updated", actor=principal.actor, data={"fields": ["env"]}
        )
        await session.flush()
        return env

    env = await with_cas_retry(session, attempt)
    await record_activity(session, env.id)
    return environment_from_model(env)


async def refresh_activity(session: AsyncSession, principal: Principal, id_or_name: str) -> None:
    """Restart the idle clock (in any state: it only matters once it runs)."""
    env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_LIFECYCLE)
    await record_activity(session, env.id, force=True)


async def recover(
    lifecycle: Lifecycle, session: AsyncSession, principal: Principal, id_or_name: str
) -> Environment:
    """Out of `error`: start it again (its workspace volume survived the failure)."""
    env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_LIFECYCLE)
    if env.state is not EnvState.ERROR or env.desired_state is DesiredState.DELETED:
        raise InvalidRequest(
            f"environment is {env.state.value}: only one in error can be recovered"
        )
    return await lifecycle.request_start(
        session, principal, env.id, only_from=frozenset({EnvState.ERROR})
    )


async def resize(
    sessions: async_sessionmaker[AsyncSession],
    provider: RuntimeProvider,
    resizer: Resizer | None,
    principal: Principal,
    id_or_name: str,
    *,
    cpu: float | None,
    memory_mb: int | None,
    disk_gb: int | None,
) -> Environment:
    """Check the new size (state, direction, runner, quotas), have the engine apply
    it to the container (outside any transaction), then record it."""
    async with sessions() as session:
        env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
        if env.kind is EnvironmentKind.SELF_HOSTED:
            raise InvalidRequest("a self-hosted environment runs on its own worker: no resize")
        current = Size(env.cpu, env.memory_mb, env.disk_gb)
        new = plan_resize(
            env.state,
            current,
            cpu=cpu,
            memory_mb=memory_mb,
            disk_gb=disk_gb,
            runtime=recorded_runtime(env.runtime),
        )
        host = await provider.host_resources()
        if new.cpu > host.cpus:
            raise InvalidRequest(f"cpu {new.cpu:g} exceeds the runner's {host.cpus:g} CPUs")
        if new.memory_mb * MIB > host.memory_bytes:
            raise InvalidRequest(
                f"memory {new.memory_mb} MB exceeds the runner's {host.memory_bytes // MIB} MB"
            )
        if env.state is EnvState.RUNNING:
            await admit(
                session,
                env.org_id,
                cpu=max(0.0, new.cpu - current.cpu),
                memory_mb=max(0, new.memory_mb - current.memory_mb),
            )
        env_id = env.id
    if resizer is None:
        raise InvalidRequest("this runtime cannot resize environments")
    try:
        await resizer.resize(env_id, cpu=new.cpu, memory_mb=new.memory_mb)
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"the engine refused the new size: {exc.message}") from exc
    return await _record_size(sessions, principal, env_id, current, new)


async def _record_size(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    env_id: str,
    old: Size,
    new: Size,
) -> Environment:
    async with sessions() as session:

        async def attempt() -> EnvironmentModel:
            env = await get_environment(session, principal, env_id, Permission.ENVIRONMENTS_WRITE)
            env.cpu, env.memory_mb = new.cpu, new.memory_mb
            record_environment_event(
                session,
                env,
                "environment.resized",
                actor=principal.actor,
                data={
                    "cpu": [old.cpu, new.cpu],
                    "memory_mb": [old.memory_mb, new.memory_mb],
                },
            )
            await session.flush()
            return env

        env = await with_cas_retry(session, attempt)
        await commit_or_conflict(session)
        return environment_from_model(env)
