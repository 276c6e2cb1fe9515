"""Where an engine published an environment agent's port (on a Swarm node: the
node's address and a port the engine chose), from a container's inspect."""

from typing import Any

from sandbay.runtime.envd.channel import PORT


def published_endpoint(raw: dict[str, Any]) -> str | None:
    """`host:port` the engine published the agent's port on (from an inspect)."""
    ports = ((raw.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{PORT}/tcp") or []
    for binding in ports:
        if binding.get("HostPort") and ":" not in (binding.get("HostIp") or ""):
            return f"{binding.get('HostIp') or '127.0.0.1'}:{binding['HostPort']}"
    return None
