"""Where an environment's agent listens on this engine: the container's address on
the engine's network and the token made when the container was created, read from
one inspect and cached until a call finds them stale (docs/envd.md)."""

from typing import Any

from docker.errors import NotFound

from sandbay.domain.errors import Conflict, ContainerNotFound, RuntimeFailure
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.health import EngineHealth
from sandbay.runtime.docker.names import TOKEN_VAR, container_name
from sandbay.runtime.docker.ports import published_endpoint
from sandbay.runtime.envd.channel import PORT, Address


class AgentMissing(RuntimeFailure):
    """The container was made without the environment agent (an older release)."""


def address_of(raw: dict[str, Any]) -> Address:
    """The agent's address from a container's inspect result."""
    state = raw.get("State") or {}
    if not state.get("Running"):
        raise Conflict("the environment's workload is not running")
    if state.get("Paused"):
        raise Conflict("the environment is paused")
    env = (raw.get("Config") or {}).get("Env") or []
    token = next((e.split("=", 1)[1] for e in env if e.startswith(f"{TOKEN_VAR}=")), "")
    if not token:
        raise AgentMissing("the environment runs without its agent: restart it")
    published = published_endpoint(raw)
    if published is not None:
        # A Swarm node's runner: the same endpoint every replica uses.
        return Address.at(published, token)
    settings = raw.get("NetworkSettings") or {}
    hosts = [n.get("IPAddress") for n in (settings.get("Networks") or {}).values()]
    host = next((h for h in hosts if h), settings.get("IPAddress"))
    if not host:
        raise RuntimeFailure("the environment has no address on the engine's network")
    return Address(host=host, port=PORT, token=token)


class DockerLocator:
    """`Locator` for the containers of one Docker engine."""

    def __init__(self, engine: Engine, gone_with_engine: EngineHealth | None = None) -> None:
        self._engine = engine
        self._cache: dict[str, Address] = {}
        #: Set when containers stop with their engine (no live restore): while it is
        #: known down, a cached address names an agent that is gone.
        self._gone_with_engine = gone_with_engine

    def _inspect(self, environment_id: str) -> dict[str, Any]:
        try:
            raw: dict[str, Any] = self._engine.api.inspect_container(container_name(environment_id))
        except NotFound as exc:
            raise ContainerNotFound("the environment has no container") from exc
        return raw

    async def locate(self, environment_id: str, *, fresh: bool = False) -> Address:
        if self._gone_with_engine is not None and self._gone_with_engine.down:
            # Ask the engine (a bounded ping first): a 503 while it is away, and the
            # agent's new address once it is back.
            fresh = True
        if not fresh and (known := self._cache.get(environment_id)) is not None:
            return known
        try:
            address = address_of(await self._engine.run(self._inspect, environment_id))
        except (Conflict, ContainerNotFound):
            self._cache.pop(environment_id, None)
            raise
        self._cache[environment_id] = address
        return address

    def forget(self, environment_id: str) -> None:
        self._cache.pop(environment_id, None)
