"""The access capability as one object: SSH credential and preview token limits,
how the gateway and previews are addressed, and the network policy enforcer."""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Environment, EnvironmentUpdate
from sandbay.domain.keys import Principal
from sandbay.services.access import network
from sandbay.services.access.network import NetworkEnforcer
from sandbay.services.access.origin import PublicAddress
from sandbay.services.access.preview import PreviewGate, PreviewUrls
from sandbay.services.access.ssh import SshEndpoint, TtlLimits


@dataclass(frozen=True, slots=True)
class Origin:
    """How the caller reached the API: addresses handed out default to it."""

    scheme: str
    host: str | None
    port: int | None
    netloc: str


def origin_of(base_url: str) -> Origin:
    """The `Origin` of a base URL (`PublicAddress.base_url`)."""
    parts = urlsplit(base_url)
    return Origin(scheme=parts.scheme, host=parts.hostname, port=parts.port, netloc=parts.netloc)


@dataclass(frozen=True, slots=True)
class AccessService:
    sessions: async_sessionmaker[AsyncSession]
    network: NetworkEnforcer
    gate: PreviewGate
    ssh_host_key: str
    ssh_fingerprint: str
    ssh_public_host: str | None
    ssh_public_port: int
    ssh_ttl: TtlLimits
    preview_ttl: TtlLimits
    preview_domain: str
    preview_port: int | None
    #: Where clients reach the API (configured, or as a trusted proxy forwards it).
    address: PublicAddress = field(default_factory=PublicAddress)

    def ssh_endpoint(self, origin: Origin) -> SshEndpoint:
        """The gateway as the caller reaches it: the configured public host, else the
        host the caller used for the API."""
        host = self.ssh_public_host or origin.host or "127.0.0.1"
        return SshEndpoint(host, self.ssh_public_port, self.ssh_host_key, self.ssh_fingerprint)

    def preview_urls(self, origin: Origin) -> PreviewUrls:
        return PreviewUrls(
            scheme=origin.scheme,
            domain=self.preview_domain or (origin.host or "localhost"),
            port=self.preview_port or origin.port,
            api_base=f"{origin.scheme}://{origin.netloc}",
        )

    async def update_environment(
        self,
        principal: Principal,
        env: str,
        body: EnvironmentUpdate,
        *,
        if_versions: frozenset[int] | None = None,
    ) -> Environment:
        """An update whose answer means a new network policy is already in force;
        `if_versions` (If-Match) makes it conditional on the version (else 412)."""
        return await network.update_environment(
            self.sessions, self.network, principal, env, body, if_versions
        )
