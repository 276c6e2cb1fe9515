"""Engine work for each transient state. Runs outside any database transaction
and reports an Outcome that the loop applies with a compare-and-set."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import RuntimeFailure
from sandbay.domain.runtime import ContainerInfo, ContainerSpec
from sandbay.domain.states import Action, DesiredState, EnvState, after_action
from sandbay.runtime.provider import RuntimeProvider


@dataclass(frozen=True, slots=True)
class Work:
    """What the reconciler read about one environment before acting."""

    environment_id: str
    kind: EnvironmentKind
    version: int
    state: EnvState
    desired: DesiredState
    spec: ContainerSpec
    stop_signal: str
    stop_timeout: float
    stop_force: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    to: EnvState
    reason: str
    container_id: str | None = None
    exit_code: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _exited(info: ContainerInfo) -> Outcome:
    """The workload is not running after a start: it exited on its own."""
    code = info.exit_code if info.exit_code is not None else -1
    oom = " (out of memory)" if info.oom_killed else ""
    reason = f"workload exited with code {code}{oom}"
    to = EnvState.STOPPED if code == 0 else EnvState.ERROR
    return Outcome(to, reason, info.container_id, code)


async def _create(provider: RuntimeProvider, work: Work) -> Outcome:
    info = await provider.create(work.spec)
    return Outcome(
        after_action(Action.CREATE, work.desired), "container created", info.container_id
    )


async def _start(provider: RuntimeProvider, work: Work) -> Outcome:
    info = await provider.start(work.spec)
    if not info.running:
        return _exited(info)
    return Outcome(EnvState.RUNNING, "workload started", info.container_id)


async def _stop(
    provider: RuntimeProvider, work: Work, forced: Callable[[], Awaitable[bool]]
) -> Outcome:
    """Signal, grace period, kill; a force stop (even one requested mid-way) kills now."""
    env_id = work.environment_id
    if work.stop_force:
        await provider.kill(env_id)
        reason = "killed (force stop)"
    else:
        await provider.signal(env_id, work.stop_signal)
        deadline = time.monotonic() + work.stop_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await provider.kill(env_id)
                reason = f"killed after the {work.stop_timeout:g}s grace period"
                break
            if await provider.wait_exit(env_id, min(remaining, 1.0)):
                reason = f"stopped by {work.stop_signal}"
                break
            if await forced():
                await provider.kill(env_id)
                reason = "killed (force stop during graceful stop)"
                break
    info = await provider.inspect(env_id)
    if info is not None and info.running:
        raise RuntimeFailure("the workload is still running after the stop")
    return Outcome(
        EnvState.STOPPED,
        reason,
        info.container_id if info else None,
        info.exit_code if info else None,
    )


async def _delete(provider: RuntimeProvider, work: Work) -> Outcome:
    await provider.remove(work.environment_id)
    return Outcome(EnvState.DELETED, "container and workspace removed")


async def perform(
    action: Action,
    provider: RuntimeProvider,
    work: Work,
    *,
    forced: Callable[[], Awaitable[bool]],
) -> Outcome:
    if work.kind is EnvironmentKind.SELF_HOSTED:
        # Compute is the user's own worker: there is no container to act on.
        return Outcome(after_action(action, work.desired), f"{action.value} (self-hosted)")
    match action:
        case Action.CREATE:
            return await _create(provider, work)
        case Action.START:
            return await _start(provider, work)
        case Action.STOP:
            return await _stop(provider, work, forced)
        case Action.DELETE:
            return await _delete(provider, work)
        case Action.ARCHIVE | Action.RESTORE:
            raise RuntimeFailure(f"{action.value} needs an archive store, which is not configured")
