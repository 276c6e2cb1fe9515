"""Seed dialects: each platform's documented paths and shapes, as thin adapters over
the same services as the native API."""

from sandbay.dialects import camposcloud, chowder, daytona, qoder
from sandbay.dialects.cloudcli import agents as cloudcli_agents
from sandbay.dialects.cloudcli import environments as cloudcli
from sandbay.dialects.kit import Dialect, install_dialects

__all__ = ["DIALECTS", "install_dialects"]

#: Installed in this order by `kit.install_dialects`.
DIALECTS: tuple[Dialect, ...] = (
    qoder.DIALECT,
    cloudcli.DIALECT,
    cloudcli_agents.DIALECT,
    camposcloud.DIALECT,
    daytona.DIALECT,
    chowder.DIALECT,
)
