"""The runners behind one Docker engine, read from the Swarm through that engine's
API: pointed at a Swarm manager, every node is a runner (state, availability,
labels, resources come from the Swarm); pointed at an engine without Swarm mode,
the engine's own host is the one runner, as it always was. Availability (drain,
activate, pause) is changed through the node's spec, at the version read."""

from typing import Any

from docker import APIClient
from docker.errors import APIError

from sandbay.domain.errors import Conflict
from sandbay.domain.runners import Availability, Runner, RunnerState, find_runner
from sandbay.runtime.docker.provider import DockerProvider

#: A node spec update races any other one (Swarm answers "update out of sequence");
#: read and write again this many times.
_UPDATE_ATTEMPTS = 3
_STATES = {"ready": RunnerState.READY, "down": RunnerState.DOWN, "disconnected": RunnerState.DOWN}


def _labels(pairs: list[str] | dict[str, str] | None) -> dict[str, str]:
    """Engine labels come as `k=v` strings in `info`, as a mapping on a node."""
    if isinstance(pairs, dict):
        return dict(pairs)
    return dict(pair.partition("=")[::2] for pair in pairs or [])


def node_runner(node: dict[str, Any]) -> Runner:
    """One Swarm node (`GET /nodes`) as a runner."""
    spec, description = node.get("Spec") or {}, node.get("Description") or {}
    status, resources = node.get("Status") or {}, description.get("Resources") or {}
    manager = node.get("ManagerStatus")
    address = status.get("Addr") or None
    if address in (None, "0.0.0.0") and manager:  # a manager may report 0.0.0.0
        address = str(manager.get("Addr", "")).rpartition(":")[0] or None
    return Runner(
        id=str(node["ID"]),
        hostname=str(description.get("Hostname", "")),
        state=_STATES.get(str(status.get("State")), RunnerState.UNKNOWN),
        availability=Availability(str(spec.get("Availability", "active"))),
        labels=_labels(spec.get("Labels")),
        engine_labels=_labels((description.get("Engine") or {}).get("Labels")),
        nano_cpus=int(resources.get("NanoCPUs", 0)),
        memory_bytes=int(resources.get("MemoryBytes", 0)),
        manager=manager is not None,
        swarm=True,
        address=address,
    )


def host_runner(info: dict[str, Any], runner_id: str) -> Runner:
    """The engine's own host, when it is not in a Swarm."""
    return Runner(
        id=runner_id,
        hostname=str(info.get("Name", "")),
        state=RunnerState.READY,
        availability=Availability.ACTIVE,
        engine_labels=_labels(info.get("Labels")),
        nano_cpus=int(info.get("NCPU", 0)) * 1_000_000_000,
        memory_bytes=int(info.get("MemTotal", 0)),
        manager=False,
        swarm=False,
    )


def _swarm_mode(info: dict[str, Any]) -> bool:
    """Whether to read nodes (a manager), or the host alone (no Swarm); a worker,
    or a Swarm that is locked or still joining, cannot answer for its nodes."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state == "inactive":
        return False
    if state != "active":
        raise Conflict(f"the engine's Swarm is {state}: its nodes cannot be read now")
    if not swarm.get("ControlAvailable"):
        raise Conflict("the engine is a Swarm worker: point SANDBAY_DOCKER_HOST at a Swarm manager")
    return True


class DockerSwarm:
    """The runners seen through the provider's engine."""

    def __init__(self, provider: DockerProvider, runner_id: str) -> None:
        self._provider = provider
        self._runner_id = runner_id

    def _runners(self, api: APIClient) -> list[Runner]:
        info = api.info()
        if not _swarm_mode(info):
            return [host_runner(info, self._runner_id)]
        return [node_runner(node) for node in api.nodes()]

    async def runners(self) -> list[Runner]:
        """Every runner: the Swarm's nodes, or this host alone."""
        return await self._provider.call(self._runners)

    async def runner(self, ref: str) -> Runner:
        """One runner by id (or unique hostname); 404 if there is none."""
        return find_runner(await self.runners(), ref)

    async def set_availability(self, ref: str, availability: Availability) -> Runner:
        """Drain, pause or activate a node; 409 without Swarm mode (one host)."""

        def update(api: APIClient) -> Runner:
            info = api.info()
            if not _swarm_mode(info):
                raise Conflict(
                    f"not a Swarm: this engine is one host ({self._runner_id}) without "
                    "Swarm mode, so it cannot be drained or activated; run `docker swarm "
                    "init` on it (and point SANDBAY_DOCKER_HOST at the manager)"
                )
            node_id = find_runner([node_runner(n) for n in api.nodes()], ref).id
            for attempt in range(_UPDATE_ATTEMPTS):
                node = api.inspect_node(node_id)
                spec: Any = dict(node["Spec"])
                spec["Availability"] = availability.value
                try:
                    api.update_node(node_id, node["Version"]["Index"], spec)
                    break
                except APIError as exc:
                    if "out of sequence" not in str(exc) or attempt + 1 == _UPDATE_ATTEMPTS:
                        raise
            return node_runner(api.inspect_node(node_id))

        return await self._provider.call(update)
