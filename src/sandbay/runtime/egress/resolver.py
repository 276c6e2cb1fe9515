"""Names to addresses for environments under a domain policy. The platform answers
their DNS itself, and remembers, per environment, which addresses it gave for which
name: the proxy lets a connection through only to an address it gave for the name
the connection names (so neither a direct-IP connection nor one name sent in SNI to
another name's address gets out).

Addresses come from the operator's static map first (`SANDBAY_EGRESS__HOSTS`), then
from the host's resolver. From the host's resolver, addresses the host itself
answers on (loopback, link-local, unspecified, multicast, the engine's bridge) are
dropped, so a name cannot be pointed at the platform (DNS rebinding)."""

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping

from sandbay.domain.egress import normalize_name

#: How long an address given for a name stays usable for connections to it.
REMEMBER_S = 3600.0
TTL_S = 30


class Resolver:
    def __init__(
        self,
        static: Mapping[str, Iterable[str]] | None = None,
        *,
        forbidden: Iterable[str] = (),
    ) -> None:
        self._static = {normalize_name(k): tuple(v) for k, v in (static or {}).items()}
        self._forbidden = [ipaddress.ip_network(n, strict=False) for n in forbidden]
        #: environment id → name → address → when it stops being usable
        self._given: dict[str, dict[str, dict[str, float]]] = {}

    def forbid(self, network: str) -> None:
        """Never hand out addresses in `network` from the host's resolver."""
        self._forbidden.append(ipaddress.ip_network(network, strict=False))

    async def resolve(self, environment_id: str, name: str) -> list[str]:
        """The IPv4 addresses for `name`, remembered as given to the environment."""
        name = normalize_name(name)
        addresses = list(self._static.get(name, ())) or await self._lookup(name)
        if addresses:
            until = time.monotonic() + REMEMBER_S
            given = self._given.setdefault(environment_id, {}).setdefault(name, {})
            for address in addresses:
                given[address] = until
        return addresses

    def given(self, environment_id: str, name: str, address: str) -> bool:
        """True if the platform gave `address` for `name` to this environment lately."""
        until = self._given.get(environment_id, {}).get(normalize_name(name), {}).get(address)
        return until is not None and until > time.monotonic()

    def names_for(self, environment_id: str, address: str) -> list[str]:
        """The names the platform gave `address` for, to this environment."""
        now = time.monotonic()
        return [
            name
            for name, addresses in self._given.get(environment_id, {}).items()
            if addresses.get(address, 0) > now
        ]

    def forget(self, environment_id: str) -> None:
        self._given.pop(environment_id, None)

    async def _lookup(self, name: str) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM), 5
            )
        except (OSError, TimeoutError, UnicodeError):
            return []
        found = dict.fromkeys(str(info[4][0]) for info in infos)
        return [a for a in found if self._usable(a)]

    def _usable(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            return False
        return not any(ip in network for network in self._forbidden)
