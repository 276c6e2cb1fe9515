"""OOM kills inside environments, as the metrics collector observes them: each is
an `environment.oom_killed` event (a workload's end also shows on the environment
itself, as its error, through the reconciler's drift repair)."""

from sandbay.db.models import EnvironmentModel
from sandbay.db.session import AsyncSession
from sandbay.services.events.record import record_environment_event

ACTOR = "system:metrics"


async def record_oom_kills(
    session: AsyncSession, processes: dict[str, int], workloads: list[str]
) -> None:
    """`processes`: environment → processes killed in its cgroup since the last look;
    `workloads`: environments whose container ended killed by the OOM killer."""
    for env_id in sorted(set(processes) | set(workloads)):
        env = await session.get(EnvironmentModel, env_id)
        if env is None:
            continue
        workload = env_id in workloads
        count = processes.get(env_id, 0)
        reason = (
            "workload killed: out of memory"
            if workload
            else f"{count} process{'es' if count > 1 else ''} killed: out of memory"
        )
        record_environment_event(
            session,
            env,
            "environment.oom_killed",
            actor=ACTOR,
            reason=reason,
            data={"workload": workload, "processes": count, "memory_mb": env.memory_mb},
        )
