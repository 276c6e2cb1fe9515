"""`Resizer` on Docker: `docker update` of a container's CPU quota (NanoCpus, as it
was created with) and memory limit (swap kept equal: no swap), live for a running
container, kept by a stopped one for its next start."""

from typing import Any

from docker.errors import NotFound

from sandbay.runtime.docker.names import MIB, container_name
from sandbay.runtime.docker.provider import DockerProvider


class DockerResources:
    def __init__(self, provider: DockerProvider) -> None:
        self._provider = provider

    async def resize(self, environment_id: str, *, cpu: float, memory_mb: int) -> bool:
        body = {
            "NanoCpus": int(cpu * 1e9),
            "Memory": memory_mb * MIB,
            "MemorySwap": memory_mb * MIB,
        }
        name = container_name(environment_id)

        def update(api: Any) -> bool:
            # The SDK's `update_container` has no NanoCpus: its JSON helpers post it.
            try:
                response = api._post_json(api._url("/containers/{0}/update", name), data=body)
                api._raise_for_status(response)
            except NotFound:
                return False
            return True

        return await self._provider.call(update)
