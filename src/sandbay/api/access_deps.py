"""What the access routes (SSH credentials, preview links and tokens, updates that
enforce a network policy) need, built once by the app's lifespan, and how the
addresses they hand out are spelled for the caller."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from sandbay.services.access.network import NetworkEnforcer
from sandbay.services.access.preview import PreviewUrls
from sandbay.services.access.ssh import SshEndpoint, TtlLimits


@dataclass(frozen=True, slots=True)
class AccessServices:
    sessions: async_sessionmaker[AsyncSession]
    network: NetworkEnforcer | None
    ssh_host_key: str
    ssh_fingerprint: str
    ssh_public_host: str | None
    ssh_public_port: int
    ssh_ttl: TtlLimits
    preview_ttl: TtlLimits
    preview_domain: str
    preview_port: int | None

    def ssh_endpoint(self, connection: HTTPConnection) -> SshEndpoint:
        """The gateway as the caller reaches it: the configured public host, else the
        host the caller used for the API."""
        host = self.ssh_public_host or connection.url.hostname or "127.0.0.1"
        return SshEndpoint(host, self.ssh_public_port, self.ssh_host_key, self.ssh_fingerprint)

    def preview_urls(self, connection: HTTPConnection) -> PreviewUrls:
        url = connection.url
        port = self.preview_port or url.port
        return PreviewUrls(
            scheme=url.scheme,
            domain=self.preview_domain or (url.hostname or "localhost"),
            port=port,
            api_base=f"{url.scheme}://{url.netloc}",
        )


async def get_access(connection: HTTPConnection) -> AccessServices:
    access: AccessServices = connection.app.state.access
    return access


AccessDep = Annotated[AccessServices, Depends(get_access)]
