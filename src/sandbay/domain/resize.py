"""What a resize may change: CPU and memory of a running environment only upward
(Daytona's hot resize; the engine changes the limits live), of a stopped one either
way; never the disk (the engine cannot grow a container's filesystem). gVisor
(runsc) has no live update: a running one is resized by a stop and a start."""

from dataclasses import dataclass

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.runtime import Runtime
from sandbay.domain.states import EnvState


@dataclass(frozen=True, slots=True)
class Size:
    cpu: float
    memory_mb: int
    disk_gb: int


def plan_resize(
    state: EnvState,
    current: Size,
    *,
    cpu: float | None,
    memory_mb: int | None,
    disk_gb: int | None,
    runtime: Runtime = Runtime.RUNC,
) -> Size:
    """The new size, or InvalidRequest saying why not."""
    if state not in (EnvState.RUNNING, EnvState.STOPPED):
        raise InvalidRequest(
            f"environment is {state.value}: only a running or stopped one can be resized"
        )
    if state is EnvState.RUNNING and runtime is Runtime.RUNSC:
        raise InvalidRequest(
            "a running gVisor (runsc) environment cannot be resized: gVisor cannot change "
            "its limits live; stop it, resize it and start it again"
        )
    if cpu is None and memory_mb is None and disk_gb is None:
        raise InvalidRequest("no resource changes specified: give cpu, memory or disk")
    if disk_gb is not None and disk_gb != current.disk_gb:
        raise InvalidRequest(
            "the disk cannot be resized on this server: Docker cannot grow or shrink a "
            "container's filesystem; create a new sandbox with the disk size you need"
        )
    new = Size(
        cpu=current.cpu if cpu is None else cpu,
        memory_mb=current.memory_mb if memory_mb is None else memory_mb,
        disk_gb=current.disk_gb,
    )
    if state is EnvState.RUNNING:
        if new.cpu < current.cpu:
            raise InvalidRequest("the environment must be stopped to decrease its CPU")
        if new.memory_mb < current.memory_mb:
            raise InvalidRequest("the environment must be stopped to decrease its memory")
    if new == current:
        raise InvalidRequest("no resource changes specified: the environment already has this size")
    return new
