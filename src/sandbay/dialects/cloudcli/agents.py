"""The CloudCLI dialect's agent paths: `POST /api/v1/agent/execute` (the environment
is chosen in the body, the project by name under /workspace, streamed by default)
and `GET /api/v1/agent/models`, with CloudCLI's error shape `{"error": "…"}`. The
environments half of the dialect lives in `cloudcli/environments.py`; both adapt the
same services (here `services.agents`)."""

import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from sandbay.api.deps import AgentsDep, PrincipalDep
from sandbay.api.sse import agent_run_answer
from sandbay.dialects.cloudcli.environments import render_error
from sandbay.dialects.error_shapes import CLOUDCLI
from sandbay.dialects.kit import Dialect
from sandbay.domain.agents import (
    MAX_AGENT_TIMEOUT_S,
    MAX_PROMPT_CHARS,
    AgentExecuteRequest,
    AgentKind,
    GitUrl,
    ModelName,
    ProviderName,
)
from sandbay.domain.errors import InvalidRequest
from sandbay.services.agents import service as agent_service
from sandbay.services.agents.runs import LiveRun

PREFIX = "/api/v1/agent"
router = APIRouter(prefix=PREFIX, tags=["cloudcli"])
#: The plural spelling some CloudCLI clients use for the models path.
ALIAS = "/api/v1/agents"
alias_router = APIRouter(prefix=ALIAS, tags=["cloudcli"])


class CloudAgentExecuteRequest(BaseModel):
    """CloudCLI's AgentExecuteRequest: `environmentId` picks the environment (id or
    name), `projectName` a project under /workspace (no path: it is prefixed)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    environment_id: str = Field(
        validation_alias=AliasChoices("environmentId", "environment_id"), min_length=1
    )
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)] = Field(
        validation_alias=AliasChoices("prompt", "message")
    )
    project_name: str | None = Field(
        None, validation_alias=AliasChoices("projectName", "project_name")
    )
    provider: Literal["claude", "codex", "builtin", "cursor"] = Field(
        "claude", validation_alias=AliasChoices("provider", "agent")
    )
    model: ModelName | None = None
    model_provider: ProviderName | None = Field(
        None,
        validation_alias=AliasChoices("modelProvider", "model_provider"),
        description="sandbay: the model provider to use (default the first the agent can use)",
    )
    stream: bool = True
    github_url: GitUrl = Field(None, validation_alias=AliasChoices("githubUrl", "github_url"))
    timeout: float | None = Field(None, gt=0, le=MAX_AGENT_TIMEOUT_S)

    def native(self) -> AgentExecuteRequest:
        if self.provider == "cursor":
            raise InvalidRequest("the cursor agent is not available here: use claude or codex")
        name = (self.project_name or "").strip()
        if "/" in name or name in (".", ".."):
            raise InvalidRequest("projectName is a name under /workspace, not a path")
        return AgentExecuteRequest(
            prompt=self.prompt,
            agent=AgentKind(self.provider),
            model=self.model,
            provider=self.model_provider,
            project=name or None,
            git_url=self.github_url,
            stream=self.stream,
            timeout=self.timeout,
        )


async def _events(live: LiveRun) -> AsyncIterator[bytes]:
    async for event in live.stream():
        payload = {
            "type": event.type,
            "seq": event.seq,
            "time": event.time.isoformat(),
            **event.data,
        }
        yield f"data: {json.dumps(payload)}\n\n".encode()
    yield b'data: {"type": "done"}\n\n'


@router.post(
    "/execute",
    response_class=Response,
    responses={424: {"description": "The environment cannot run this agent"}},
)
async def execute(
    body: CloudAgentExecuteRequest, principal: PrincipalDep, agents: AgentsDep
) -> Response:
    """Run Claude Code, Codex or the built-in agent on a running environment. Streams
    `data:` events by default (`stream: false` answers once the run ends). 400 for a
    bad request, 404 for an unknown environment, 424 when it cannot run the agent."""
    live = await agent_service.execute(agents, principal, body.environment_id, body.native())
    return await agent_run_answer(live, stream=body.stream, events=_events)


@router.get("/models")
@alias_router.get("/models", include_in_schema=False)
async def models(principal: PrincipalDep, agents: AgentsDep) -> JSONResponse:
    """AgentModels: each agent with the models the organization's providers offer."""
    listing = await agent_service.list_models(agents, principal)
    data = [
        {
            "id": entry.agent.value,
            "name": entry.name,
            "available": entry.available,
            "models": {
                "OPTIONS": [{"value": m, "label": m} for m in entry.models],
                "DEFAULT": entry.default_model,
            },
        }
        for entry in listing.data
    ]
    return JSONResponse({"success": True, "data": data})


DIALECT = Dialect(
    name="cloudcli-agents",
    prefixes=(PREFIX, ALIAS),
    routers=(router, alias_router),
    renderer=render_error,
    error_shape=CLOUDCLI,
)
