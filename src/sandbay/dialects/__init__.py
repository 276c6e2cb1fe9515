"""Seed dialects: each platform's documented paths and shapes, as thin adapters over
the same services as the native API."""

from types import ModuleType

from sandbay.dialects import camposcloud, chowder, daytona, qoder
from sandbay.dialects.cloudcli import agents as cloudcli_agents
from sandbay.dialects.cloudcli import environments as cloudcli

#: Installed in this order (each module's `install(app, renderers)`).
DIALECTS: tuple[ModuleType, ...] = (qoder, cloudcli, cloudcli_agents, camposcloud, daytona, chowder)
