"""The base URL clients reach this server at, for the URLs the API hands out: the
configured public URL; else, from a trusted proxy (as uvicorn's
`--forwarded-allow-ips`), the scheme and host it forwarded (`X-Forwarded-Proto`,
`X-Forwarded-Host`); else the request's own. Headers from anyone else are ignored:
a client must not choose the addresses other clients are given."""

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _first(value: str | None) -> str | None:
    """The client-most entry of a comma-separated forwarded header."""
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


@dataclass(frozen=True, slots=True)
class PublicAddress:
    public_url: str | None = None
    trust_all: bool = False
    trusted: tuple[Network, ...] = ()

    @classmethod
    def of(cls, public_url: str | None, forwarded_allow_ips: str) -> "PublicAddress":
        items = [item.strip() for item in forwarded_allow_ips.split(",") if item.strip()]
        networks = tuple(ipaddress.ip_network(i, strict=False) for i in items if i != "*")
        return cls(public_url.rstrip("/") if public_url else None, "*" in items, networks)

    def trusts(self, peer: str | None) -> bool:
        if self.trust_all:
            return True
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def base_url(
        self,
        *,
        scheme: str,
        host: str,
        peer: str | None,
        forwarded_proto: str | None,
        forwarded_host: str | None,
    ) -> str:
        """`scheme://host[:port][/prefix]`, without a trailing slash."""
        if self.public_url:
            return self.public_url
        if self.trusts(peer):
            proto = (_first(forwarded_proto) or "").lower()
            scheme = proto if proto in ("http", "https") else scheme
            host = _first(forwarded_host) or host
        return f"{scheme}://{host}"
