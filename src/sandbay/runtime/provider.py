"""The protocol every runtime provider implements, in domain shapes only.
Providers translate engine errors into `sandbay.domain.errors.RuntimeFailure`."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sandbay.domain.runtime import (
    ContainerInfo,
    ContainerSpec,
    HookResult,
    HostResources,
    VolumeInfo,
)


class RuntimeProvider(Protocol):
    """One runner's container engine. Every method is idempotent and keyed by
    environment id, so a reconciler can repeat any step after a crash."""

    async def host_resources(self) -> HostResources:
        """CPUs, memory and GPUs this runner can give."""
        ...

    async def image_available(self, image: str) -> bool:
        """True if `image` is present, or known to its registry (pullable)."""
        ...

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the workspace volume and the container (or adopt existing ones)."""
        ...

    async def start(self, spec: ContainerSpec, *, release: bool = True) -> ContainerInfo:
        """Start the container, creating it first if it is missing. Reports the start
        the engine accepted; a workload that exits at once shows in the next inspect.
        `container_id` is set only when the container had to be created again. With
        `release=False` the agent answers but holds the workload until `release`."""
        ...

    async def release(self, environment_id: str) -> None:
        """Let the started environment's workload run (see `start`): the reconciler
        calls it once the environment's network policy is in force, so nothing of
        the workload runs without it. Idempotent."""
        ...

    async def signal(self, environment_id: str, signal: str) -> None:
        """Send `signal` to the workload; no-op if it is not running."""
        ...

    async def wait_exit(self, environment_id: str, timeout: float) -> int | None:
        """Block up to `timeout` s for the workload to stop: its exit code (-1 when the
        container is gone), or None if it still runs."""
        ...

    async def kill(self, environment_id: str) -> int | None:
        """Kill the workload now (SIGKILL) and return its exit code (as `wait_exit`)."""
        ...

    async def pause(self, environment_id: str) -> None:
        """Freeze every process of the workload (memory kept, no CPU); no-op if frozen."""
        ...

    async def resume(self, environment_id: str) -> None:
        """Thaw a frozen workload; no-op if it is not frozen."""
        ...

    async def inspect(self, environment_id: str) -> ContainerInfo | None:
        """The container's state, or None if it does not exist."""
        ...

    async def remove(self, environment_id: str) -> None:
        """Remove container and workspace volume; no-op for what is already gone."""
        ...

    async def list_containers(self, instance: str) -> list[ContainerInfo]:
        """Every container of this installation (for reconciliation and orphan GC)."""
        ...

    async def list_volumes(self, instance: str) -> list[VolumeInfo]:
        """Every workspace volume of this installation (for orphan GC)."""
        ...

    async def remove_volume(self, name: str) -> None: ...

    async def run_hook(self, environment_id: str, argv: list[str], timeout: float) -> HookResult:
        """Run a short command inside the running workload, bounded by `timeout`."""
        ...

    async def close(self) -> None: ...


class Archiver(Protocol):
    """Optional ability: move a stopped environment's files out of the engine and back."""

    async def export(self, environment_id: str, dest: Path) -> dict[str, Any]:
        """Write the archive's files into `dest` (the container must be stopped)."""
        ...

    async def restore(self, spec: ContainerSpec, src: Path) -> ContainerInfo:
        """Create the container and volume again with the archived files in place."""
        ...


class ImageBuilder(Protocol):
    """Optional ability: build images and keep shared volumes' storage on a runner."""

    async def has(self, ref: str) -> bool:
        """Whether the runner holds the image (no registry is asked)."""
        ...

    async def build(
        self,
        ref: str,
        dockerfile: str,
        *,
        labels: dict[str, str],
        on_log: Callable[[str], None],
        contexts: Sequence[Path] = (),
    ) -> None:
        """Build `dockerfile` as `ref`, with the files of the `contexts` tars as its
        context; a failed step raises a permanent `RuntimeFailure`. `on_log` gets the
        output as it comes, from any thread."""
        ...

    async def remove(self, ref: str) -> None: ...

    async def remove_volume(self, volume_id: str) -> None:
        """Remove a shared volume's storage (a 400 while a container mounts it)."""
        ...
