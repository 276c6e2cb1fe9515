"""Engine work for each transient state. Runs outside any database transaction
and reports an Outcome that the loop applies with a compare-and-set."""

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict, RuntimeFailure
from sandbay.domain.runtime import ContainerInfo, ContainerSpec
from sandbay.domain.states import Action, DesiredState, EnvState, Observed, Step, after_action
from sandbay.runtime.access import NetworkPolicy
from sandbay.runtime.archives import ArchiveStore
from sandbay.runtime.provider import Archiver, RuntimeProvider


class EngineFaults(Protocol):
    """Tells a container its engine stopped (a restart, an upgrade, a host going down)
    from one whose workload exited on its own."""

    def stopped_by_engine(self, info: ContainerInfo) -> bool: ...

    def undecided(self, info: ContainerInfo) -> bool:
        """Too soon to tell: it may be an engine on its way down."""
        ...


class Snapshotter(Protocol):
    """Copies an environment's root layer and /workspace out (a running one frozen
    for the copy alone) and into a created, not yet started, environment."""

    async def copy_out(self, environment_id: str, dest: Path, *, live: bool) -> float | None: ...

    async def copy_in(self, environment_id: str, src: Path) -> None: ...


class _Permanent(RuntimeFailure):
    permanent = True


@dataclass(frozen=True, slots=True)
class Engine:
    """The runtime pieces the reconciler acts through."""

    provider: RuntimeProvider
    archiver: Archiver | None = None
    store: ArchiveStore | None = None
    network: NetworkPolicy | None = None
    faults: EngineFaults | None = None
    #: Snapshots' copier and where their files are (forks are filled from them).
    snapshotter: Snapshotter | None = None
    snapshots: ArchiveStore | None = None


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
    pre_stop: list[str] | None = None
    auto_restart: bool = False
    #: The snapshot its layer and workspace are filled from at its create (a fork).
    seed: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    to: EnvState
    reason: str
    container_id: str | None = None
    exit_code: int | None = None
    agent_endpoint: str | None = None
    observed: Observed | None = None
    data: dict[str, Any] = field(default_factory=dict)


def engine_stop(
    state: EnvState, info: ContainerInfo | None, faults: EngineFaults | None
) -> Step | None:
    """The step for a running environment whose engine stopped its container: back to
    running (its desired state is untouched, its workspace volume kept), not counted
    as a crash. Only a workload's own exit is its exit."""
    if state is not EnvState.RUNNING or info is None or faults is None:
        return None
    if not faults.stopped_by_engine(info):
        return None
    return Step(
        move_to=EnvState.STARTING,
        reason=f"stopped by its engine (code {info.exit_code}), not by its workload; "
        "starting it again",
    )


def observe(info: ContainerInfo | None) -> Observed:
    if info is None:
        return Observed(present=False)
    return Observed(
        present=True,
        running=info.running,
        paused=info.paused,
        exit_code=info.exit_code,
        oom_killed=info.oom_killed,
    )


async def _create(engine: Engine, work: Work) -> Outcome:
    info = await engine.provider.create(work.spec)
    if work.seed is None:
        return Outcome(
            after_action(Action.CREATE, work.desired), "container created", info.container_id
        )
    await _seed(engine, work.environment_id, work.seed)
    return Outcome(
        after_action(Action.CREATE, work.desired),
        f"container created, filled from snapshot {work.seed}",
        info.container_id,
    )


async def _seed(engine: Engine, environment_id: str, snapshot_id: str) -> None:
    """A fork's files before its first start: the snapshot's layer and workspace
    copied into its own (a retried create copies them again over the same files)."""
    if engine.snapshotter is None or engine.snapshots is None:
        raise _Permanent("this runner cannot fill an environment from a snapshot")
    src = await engine.snapshots.fetch(snapshot_id)
    if src is None:
        raise _Permanent(f"snapshot {snapshot_id}'s files are gone")
    await engine.snapshotter.copy_in(environment_id, src)


async def _start(engine: Engine, work: Work) -> Outcome:
    """The engine started the workload; the reconciler's next look (it inspects a
    running environment before finishing) sees one that exited at once."""
    info = await engine.provider.start(work.spec, release=False)
    rules = work.spec.network
    if info.running and engine.network is not None:
        # Before `running` is recorded: an environment never runs without its policy,
        # and an unrestricted one never without its wall from other environments (a
        # failure here fails the start, which is retried and then ends in error).
        # A workload that exited at once (Conflict) has nothing running to wall off:
        # the next look sees it exited.
        with contextlib.suppress(Conflict):
            await engine.network.apply(work.environment_id, rules, fresh=True)
    if info.running:
        # The agent held the workload until now: none of it ran without the policy.
        await engine.provider.release(work.environment_id)
    return Outcome(
        EnvState.RUNNING,
        "workload started",
        info.container_id or None,
        agent_endpoint=info.agent_endpoint,
    )


async def _pause(engine: Engine, work: Work) -> Outcome:
    await engine.provider.pause(work.environment_id)
    return Outcome(
        EnvState.PAUSED,
        "frozen in place (memory kept, no CPU)",
        observed=Observed(present=True, running=True, paused=True),
    )


async def _resume(engine: Engine, work: Work) -> Outcome:
    await engine.provider.resume(work.environment_id)
    return Outcome(
        EnvState.RUNNING, "thawed", observed=Observed(present=True, running=True, paused=False)
    )


async def _pre_stop(engine: Engine, work: Work, budget: float) -> dict[str, Any]:
    """Run the pre-stop hook inside the grace period; its failure never blocks the stop."""
    if not work.pre_stop or budget <= 0:
        return {}
    try:
        result = await engine.provider.run_hook(work.environment_id, work.pre_stop, budget)
    except RuntimeFailure as exc:
        return {"pre_stop": {"error": exc.message}}
    return {
        "pre_stop": {
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "output": result.output[-1024:],
        }
    }


async def _stop(engine: Engine, work: Work, forced: Callable[[], Awaitable[bool]]) -> Outcome:
    """Pre-stop hook, signal, grace period, kill; a force stop (even one requested
    mid-way) kills now. The exit code comes from the engine's wait, so a stop costs
    no more engine calls than `docker stop`."""
    env_id, provider = work.environment_id, engine.provider
    data: dict[str, Any] = {}
    code: int | None
    if work.stop_force:
        code = await provider.kill(env_id)
        reason = "killed (force stop)"
    else:
        deadline = time.monotonic() + work.stop_timeout
        data = await _pre_stop(engine, work, work.stop_timeout)
        await provider.signal(env_id, work.stop_signal)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                code = await provider.kill(env_id)
                reason = f"killed after the {work.stop_timeout:g}s grace period"
                break
            code = await provider.wait_exit(env_id, min(remaining, 1.0))
            if code is not None:
                reason = f"stopped by {work.stop_signal}"
                break
            if await forced():
                code = await provider.kill(env_id)
                reason = "killed (force stop during graceful stop)"
                break
    if code is None:  # the kill was not confirmed: look before calling it stopped
        info = await provider.inspect(env_id)
        if info is not None and info.running:
            raise RuntimeFailure("the workload is still running after the stop")
        code = info.exit_code if info else None
    return Outcome(
        EnvState.STOPPED,
        reason,
        exit_code=code if code is not None and code >= 0 else None,
        observed=Observed(present=True, running=False, exit_code=code),
        data=data,
    )


async def _archive(engine: Engine, work: Work) -> Outcome:
    if engine.archiver is None or engine.store is None:
        raise RuntimeFailure("this runner cannot archive (no archiver or archive store)")
    staged = await engine.store.staging(work.environment_id)
    manifest = await engine.archiver.export(work.environment_id, staged)
    await engine.store.commit(work.environment_id, staged)
    await engine.provider.remove(work.environment_id)
    size = sum(f["bytes"] for f in manifest["files"].values())
    return Outcome(
        EnvState.ARCHIVED,
        f"archived ({size} bytes); container and volume freed",
        data={"archive_bytes": size},
    )


async def _restore(engine: Engine, work: Work) -> Outcome:
    if engine.archiver is None or engine.store is None:
        raise RuntimeFailure("this runner cannot restore (no archiver or archive store)")
    src = await engine.store.fetch(work.environment_id)
    if src is None:
        info = await engine.provider.inspect(work.environment_id)
        if info is None:
            raise RuntimeFailure("no archive and no container: nothing to restore")
        reason = "already restored"  # a retry after the archive was consumed
    else:
        info = await engine.archiver.restore(work.spec, src)
        await engine.store.delete(work.environment_id)
        reason = "restored from archive"
    return Outcome(after_action(Action.RESTORE, work.desired), reason, info.container_id)


async def _delete(engine: Engine, work: Work) -> Outcome:
    await engine.provider.remove(work.environment_id)
    if engine.store is not None:
        await engine.store.delete(work.environment_id)
    return Outcome(EnvState.DELETED, "container, workspace and archive removed")


async def perform(
    action: Action,
    engine: Engine,
    work: Work,
    *,
    forced: Callable[[], Awaitable[bool]],
) -> Outcome:
    if work.kind is EnvironmentKind.SELF_HOSTED:
        # Compute is the user's own worker: there is no container to act on.
        return Outcome(after_action(action, work.desired), f"{action.value} (self-hosted)")
    match action:
        case Action.CREATE:
            return await _create(engine, work)
        case Action.START:
            return await _start(engine, work)
        case Action.PAUSE:
            return await _pause(engine, work)
        case Action.RESUME:
            return await _resume(engine, work)
        case Action.STOP:
            return await _stop(engine, work, forced)
        case Action.ARCHIVE:
            return await _archive(engine, work)
        case Action.RESTORE:
            return await _restore(engine, work)
        case Action.DELETE:
            return await _delete(engine, work)
