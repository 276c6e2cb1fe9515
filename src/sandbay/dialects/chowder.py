"""The Chowder dialect: OpenClaw instances at `/v1/instances…` (Bearer auth, sandbay
keys: `sbk_org_…` is Chowder's `chd_org_…`, a scoped `sbk_…` key restricted with
`environment_ids` to instances is its `chd_sk_…`), the instance object field for
field, and Chowder's error shape `{"detail": "…"}` (gateway failures:
`{"detail": {"error": "…"}}`). A thin adapter over `services.instances`."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sandbay.api.deps import AgentsDep, PrincipalDep
from sandbay.dialects.error_shapes import CHOWDER
from sandbay.dialects.kit import Dialect
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.instances import InstanceView, timestamp
from sandbay.services.agents import instances

PREFIX = "/v1/instances"
#: The agent cannot run in the instance (not running, no CLI, no model provider).
AGENT_REFUSALS: dict[int | str, dict[str, Any]] = {
    424: {"description": "The instance cannot run the agent"}
}
router = APIRouter(prefix=PREFIX, tags=["chowder"])

InstanceId = Annotated[str, "instance id (the environment id, env_…)"]


class InstanceCreate(BaseModel):
    """Chowder's create request. `model_provider` names a stored model provider or a
    provider kind (anthropic, openai, openai-compatible); `model` is sandbay's."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    model_provider: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "anthropic"
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    sandbox_provider: Literal["sandbox"] = "sandbox"
    openclaw_version: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "v1"
    openclaw_config: dict[str, Any] | None = None
    region: Annotated[str, StringConstraints(max_length=64)] | None = None


class Instance(BaseModel):
    """The instance object, every field of the brief."""

    id: str
    organization_id: str
    name: str
    status: str = Field(description="provisioning, running, stopping, stopped, error or terminated")
    model_provider: str
    sandbox_provider: str = "sandbox"
    sandbox_id: str | None
    gateway_url: str | None
    openclaw_version: str
    openclaw_config: dict[str, Any] | None
    region: str | None
    error_message: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, view: InstanceView) -> "Instance":
        return cls(
            id=view.id,
            organization_id=view.organization_id,
            name=view.name,
            status=view.status,
            model_provider=view.model_provider,
            sandbox_id=view.sandbox_id,
            gateway_url=view.gateway_url,
            openclaw_version=view.openclaw_version,
            openclaw_config=view.openclaw_config,
            region=view.region,
            error_message=view.error_message,
            created_at=timestamp(view.created_at),
            updated_at=timestamp(view.updated_at),
        )


class InstanceStatus(BaseModel):
    id: str
    status: str
    gateway_url: str | None


def _base(request: Request) -> str:
    return str(request.base_url)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_instance(
    body: InstanceCreate, request: Request, principal: PrincipalDep, agents: AgentsDep
) -> Instance:
    """Create an instance: an environment of the agent image running the OpenClaw
    gateway (port 18789 inside). Answers at once with `status: provisioning`; poll
    `…/status`. Organization keys only."""
    create = instances.InstanceCreate(
        name=body.name,
        model_provider=body.model_provider,
        model=body.model,
        openclaw_version=body.openclaw_version,
        openclaw_config=body.openclaw_config,
        region=body.region,
    )
    view = await instances.create_instance(agents, principal, create, _base(request))
    agents.provision_soon()
    return Instance.of(view)


@router.get("")
async def list_instances(
    request: Request, principal: PrincipalDep, agents: AgentsDep
) -> list[Instance]:
    """The organization's instances, newest first. Organization keys only."""
    return [
        Instance.of(v) for v in await instances.list_instances(agents, principal, _base(request))
    ]


@router.get("/{instance_id}")
async def get_instance(
    instance_id: InstanceId, request: Request, principal: PrincipalDep, agents: AgentsDep
) -> Instance:
    """An instance (scoped keys need `instances:read` on it)."""
    return Instance.of(await instances.get_instance(agents, principal, instance_id, _base(request)))


@router.get("/{instance_id}/status")
async def instance_status(
    instance_id: InstanceId, request: Request, principal: PrincipalDep, agents: AgentsDep
) -> InstanceStatus:
    """Whether the instance is ready: `running` once its gateway answers."""
    view = await instances.get_instance(agents, principal, instance_id, _base(request))
    return InstanceStatus(id=view.id, status=view.status, gateway_url=view.gateway_url)


@router.post("/{instance_id}/stop")
async def stop_instance(
    instance_id: InstanceId, request: Request, principal: PrincipalDep, agents: AgentsDep
) -> Instance:
    """Shut the gateway down and hibernate the sandbox (files and state are kept);
    answers once it is stopped (`stopping` if its grace period and a margin passed
    first). 409 unless running. Organization keys only: scoped keys get 403."""
    view = await instances.stop_instance(agents, principal, instance_id, _base(request))
    return Instance.of(view)


@router.post("/{instance_id}/start")
async def start_instance(
    instance_id: InstanceId, request: Request, principal: PrincipalDep, agents: AgentsDep
) -> Instance:
    """Wake a stopped instance; answers once its gateway is back. 409 if it runs."""
    view = await instances.start_instance(agents, principal, instance_id, _base(request))
    return Instance.of(view)


@router.post("/{instance_id}/restart")
async def restart_instance(
    instance_id: InstanceId, request: Request, principal: PrincipalDep, agents: AgentsDep
) -> Instance:
    """Restart the sandbox and its gateway (a stopped or failed one is started)."""
    view = await instances.start_instance(
        agents, principal, instance_id, _base(request), restart=True
    )
    return Instance.of(view)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_instance(
    instance_id: InstanceId, principal: PrincipalDep, agents: AgentsDep
) -> Response:
    """Terminate the instance: its sandbox and files are deleted."""
    await instances.delete_instance(agents, principal, instance_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _message(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The gateway routes by agent, not by backend model: `model` selects the default
    agent (which runs the instance's configured model); the caller's name is echoed."""
    if "input" not in body:
        raise InvalidRequest("input is required")
    requested = body.get("model")
    model = requested if isinstance(requested, str) and requested.startswith("openclaw") else None
    return {**body, "model": model or "openclaw"}, requested if model is None else None


async def _send(
    agents: AgentsDep,
    principal: PrincipalDep,
    instance_id: str,
    body: dict[str, Any],
    session_key: str | None,
) -> Response:
    message, echo = _message(body)
    relayed = await instances.send_message(
        agents, principal, instance_id, message, session_key=session_key
    )
    payload = relayed.body
    if relayed.streamed:  # relayed whole once the gateway is done
        return Response(str(payload), status_code=relayed.status, media_type="text/event-stream")
    if echo is not None and isinstance(payload, dict) and payload.get("object") == "response":
        payload = {**payload, "model": echo}
    return JSONResponse(payload, status_code=relayed.status)


@router.post("/{instance_id}/responses", responses=AGENT_REFUSALS)
async def send_message(
    instance_id: InstanceId,
    principal: PrincipalDep,
    agents: AgentsDep,
    body: Annotated[dict[str, Any], Body(description="An OpenResponses request: model, input, …")],
) -> Response:
    """Send a message through the instance's gateway (OpenResponses API) and answer
    with its response object. 409 unless running; 502 when the gateway does not
    answer. Scoped keys need `instances:interact` on the instance."""
    return await _send(agents, principal, instance_id, body, None)


@router.post("/{instance_id}/sessions/{session_id}/responses", responses=AGENT_REFUSALS)
async def send_session_message(
    instance_id: InstanceId,
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=200)],
    principal: PrincipalDep,
    agents: AgentsDep,
    body: Annotated[dict[str, Any], Body()],
) -> Response:
    """The same, in a named conversation of the instance (created on first use)."""
    return await _send(agents, principal, instance_id, body, f"chowder-{session_id}")


def render_error(request: Request, status_code: int, error_type: str, message: str) -> JSONResponse:
    """Chowder's errors: `{"detail": "…"}`; gateway failures nest `{"error": "…"}`."""
    if status_code == 502:
        return JSONResponse({"detail": {"error": message}}, status_code=502)
    return JSONResponse({"detail": message}, status_code=status_code)


DIALECT = Dialect(
    name="chowder",
    prefixes=(PREFIX,),
    routers=(router,),
    renderer=render_error,
    error_shape=CHOWDER,
)
