"""/v1/environments/{env}/agent/…: run Claude Code, Codex or the built-in agent inside
an environment; /v1/agents/models: what the organization can run."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from sandbay.api.deps import AgentsDep, EnvRef, PrincipalDep
from sandbay.api.sse import agent_run_answer, sse
from sandbay.domain.agents import AgentExecuteRequest, AgentModels, AgentRun
from sandbay.services.agents import service as agent_service
from sandbay.services.agents.runs import LiveRun

router = APIRouter(tags=["agents"])

EVENTS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The run (JSON), or with `stream: true` server-sent events: "
        "`run.started`, `status`, `message`, `reasoning`, `tool_use`, `tool_result`, "
        "`error`, then `result` (always last); each event's data is an AgentEvent.",
        "content": {
            # Both are in the components: the runs routes answer them.
            "application/json": {"schema": {"$ref": "#/components/schemas/AgentRun"}},
            "text/event-stream": {"schema": {"$ref": "#/components/schemas/AgentEvent"}},
        },
    },
    424: {"description": "The environment cannot run this agent"},
}


async def encode_events(live: LiveRun) -> AsyncIterator[bytes]:
    async for event in live.stream():
        yield sse(event.type, event.model_dump_json(), id=str(event.seq))


@router.post("/v1/environments/{env}/agent/execute", response_class=Response, responses=EVENTS_DOC)
async def execute(
    env: EnvRef, body: AgentExecuteRequest, principal: PrincipalDep, agents: AgentsDep
) -> Response:
    """Run an agent on a prompt inside a running environment, in a project under
    /workspace (optionally cloned from `git_url` first). The agent reaches its model
    through the model relay: the provider's key never enters the environment
    (docs/model-relay.md). Without `stream`,
    answers once the run ends; with it, streams its events (a client that goes away
    does not stop the run: read it later from `…/agent/runs/{run_id}`). 424 when the
    environment is not running, the agent's CLI is not in its image, or the
    organization has no model provider the agent can use."""
    live = await agent_service.execute(agents, principal, env, body)
    return await agent_run_answer(live, stream=body.stream, events=encode_events)


@router.get("/v1/environments/{env}/agent/runs")
async def list_runs(
    env: EnvRef,
    principal: PrincipalDep,
    agents: AgentsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[AgentRun]:
    """The environment's runs, newest first (without their events)."""
    return await agent_service.list_runs(agents, principal, env, limit)


@router.get("/v1/environments/{env}/agent/runs/{run_id}")
async def get_run(env: EnvRef, run_id: str, principal: PrincipalDep, agents: AgentsDep) -> AgentRun:
    """A run with its transcript (every event, as streamed)."""
    return await agent_service.get_run(agents, principal, env, run_id)


@router.post("/v1/environments/{env}/agent/runs/{run_id}/cancel")
async def cancel_run(
    env: EnvRef, run_id: str, principal: PrincipalDep, agents: AgentsDep
) -> AgentRun:
    """Cancel a running run: the agent and everything it started are killed."""
    return await agent_service.cancel_run(agents, principal, env, run_id)


@router.delete("/v1/environments/{env}/agent/runs/{run_id}")
async def cancel_run_by_delete(
    env: EnvRef, run_id: str, principal: PrincipalDep, agents: AgentsDep
) -> AgentRun:
    """The same as `…/cancel`."""
    return await agent_service.cancel_run(agents, principal, env, run_id)


@router.get("/v1/agents/models")
async def list_models(principal: PrincipalDep, agents: AgentsDep) -> AgentModels:
    """The agents sandbay runs and the models the organization's providers offer them."""
    return await agent_service.list_models(agents, principal)
