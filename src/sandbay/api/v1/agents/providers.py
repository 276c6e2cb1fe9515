"""/v1/model-providers/{name}: an organization's model providers. The credential is
write-only: stored encrypted, never in an answer (only `api_key_hint`)."""

from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.responses import Response

from sandbay.api.deps import AgentsDep, PrincipalDep, SessionDep
from sandbay.domain.agents import ModelProvider, ModelProviderList, ModelProviderPut
from sandbay.services.agents import providers as model_providers

router = APIRouter(prefix="/v1/model-providers", tags=["agents"])

Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Provider name")]


@router.put("/{name}")
async def put_provider(
    name: Name,
    body: ModelProviderPut,
    session: SessionDep,
    principal: PrincipalDep,
    agents: AgentsDep,
) -> ModelProvider:
    """Create or replace a provider (`anthropic`, `openai` or `openai-compatible`). The
    `api_key` is encrypted at rest and only ever handed to an agent process."""
    return await model_providers.put_provider(session, principal, agents.box, name, body)


@router.get("")
async def list_providers(session: SessionDep, principal: PrincipalDep) -> ModelProviderList:
    return ModelProviderList(data=await model_providers.list_providers(session, principal))


@router.get("/{name}")
async def get_provider(name: Name, session: SessionDep, principal: PrincipalDep) -> ModelProvider:
    return await model_providers.get_provider(session, principal, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(name: Name, session: SessionDep, principal: PrincipalDep) -> Response:
    await model_providers.delete_provider(session, principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
