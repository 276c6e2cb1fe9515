"""The door to an environment's inside (exec, processes, files, logs): resolve it with
org scoping and the permission, refuse it unless its workload runs here, mark the
activity, and commit at once in a short session of its own, so the engine I/O that
follows (which may last as long as a command runs) holds no database connection."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.states import EnvState
from sandbay.services.egress.attached import process_variables
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.records import get_environment

RUNNING_ONLY = frozenset({EnvState.RUNNING})
#: States in which the environment's container exists (its logs can be read).
HAS_CONTAINER = frozenset(
    {
        EnvState.STARTING, EnvState.RUNNING, EnvState.PAUSING, EnvState.PAUSED,
        EnvState.RESUMING, EnvState.STOPPING, EnvState.STOPPED, EnvState.ERROR,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Target:
    """An environment resolved for one operation inside it."""

    environment_id: str
    org_id: str
    user: str | None
    memory_mb: int
    #: Its variables, with its secrets' placeholders (never their values).
    env: dict[str, str]
    #: Variables removed in place: every process is spawned without them.
    unset: tuple[str, ...] = ()


async def open_target(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    id_or_name: str,
    permission: Permission,
    *,
    allowed: frozenset[EnvState] | None = RUNNING_ONLY,
    activity: bool = True,
) -> Target:
    """Resolve the environment; 409 unless its state is `allowed` (None: any state)."""
    async with sessions() as session:
        env = await get_environment(session, principal, id_or_name, permission)
        if allowed is not None:
            if env.state not in allowed:
                need = "be running" if allowed == RUNNING_ONLY else "have a container"
                hint = " (resume it first)" if env.state is EnvState.PAUSED else ""
                raise Conflict(f"environment is {env.state}; it must {need}{hint}")
            if env.kind is EnvironmentKind.SELF_HOSTED:
                raise Conflict("a self-hosted environment runs on its own worker, not here")
        if activity:
            await record_activity(session, env.id)
        variables, unset = await process_variables(session, env)
        await session.commit()
    return Target(env.id, env.org_id, env.user, env.memory_mb, variables, unset)


async def touch(sessions: async_sessionmaker[AsyncSession], environment_id: str) -> None:
    """Mark activity during a long session (a terminal being typed into)."""
    async with sessions() as session:
        await record_activity(session, environment_id)
        await session.commit()
