"""Dependency of the agent routes: the `Agents` the lifespan built (model providers,
runs in flight, the credential box)."""

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from sandbay.services.agents.service import Agents


async def get_agents(connection: HTTPConnection) -> Agents:
    agents: Agents = connection.app.state.agents
    return agents


AgentsDep = Annotated[Agents, Depends(get_agents)]
