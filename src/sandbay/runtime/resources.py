"""An optional ability of a runtime: change the CPU and memory limits of an
environment's container in place (running or stopped), without a restart."""

from typing import Protocol


class Resizer(Protocol):
    async def resize(self, environment_id: str, *, cpu: float, memory_mb: int) -> bool:
        """Apply the limits to the container; False when there is no container (the
        next create uses the environment's new size anyway)."""
        ...
