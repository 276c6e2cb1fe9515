"""OpenClaw instances (the Chowder brief) on the one lifecycle engine: an instance is
an environment of the agent image whose workload is the gateway. Create, read, list,
stop (gateway down, environment stopped, files kept), start, restart, delete, and
messages relayed to the gateway. Organization keys may do everything; scoped keys
only read (`instances:read`) and talk (`instances:interact`) on their instances."""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sandbay.db.models import AgentInstanceModel
from sandbay.db.queries import agents as queries
from sandbay.db.queries.environments import environment_from_model
from sandbay.db.session import AsyncSession
from sandbay.domain.environments import Environment, EnvironmentCreate, StopRequest
from sandbay.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    WaitTimeout,
    WrongState,
)
from sandbay.domain.instances import (
    GATEWAY_ENV,
    LAUNCHER,
    InstanceView,
    check_overrides,
    gateway_url,
    instance_status,
)
from sandbay.domain.keys import KeyKind, Permission, Principal
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.agents import providers as model_providers
from sandbay.services.agents.gateway import Relayed, gateway_ready, relay
from sandbay.services.agents.service import Agents
from sandbay.services.environments.records import read_environment

INSTANCE_MEMORY_MB = 2048
START_WAIT_S = 180.0
_RUNNING = frozenset({EnvState.RUNNING})
RESPONSE_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class InstanceCreate:
    name: str
    model_provider: str
    model: str | None
    openclaw_version: str
    openclaw_config: dict[str, Any] | None
    region: str | None


def require_org_key(principal: Principal) -> str:
    """Chowder: only organization keys create, list, start, stop, restart and delete."""
    if principal.is_admin or principal.org_id is None or principal.kind is not KeyKind.ORGANIZATION:
        raise PermissionDenied("this needs an organization key (sbk_org_…); scoped keys cannot")
    return principal.org_id


async def _load(
    session: AsyncSession, principal: Principal, instance_id: str, permission: Permission
) -> tuple[AgentInstanceModel, Environment]:
    try:
        env = await read_environment(session, principal, instance_id, permission)
    except NotFound as exc:
        raise NotFound("Instance not found.") from exc
    instance = await session.get(AgentInstanceModel, env.id)
    if instance is None or instance.deleted_at is not None:
        raise NotFound("Instance not found.")
    return instance, env


def _view(
    agents: Agents,
    instance: AgentInstanceModel,
    env: Environment,
    base_url: str,
    *,
    ready: bool,
) -> InstanceView:
    provisioned = instance.provisioned_at is not None
    status = instance_status(env.state, provisioned=provisioned, gateway_ready=ready)
    first_time = not provisioned and status == "provisioning"
    return InstanceView(
        id=env.id,
        organization_id=instance.org_id,
        name=instance.name,
        status=status,
        model_provider=instance.model_provider,
        sandbox_id=None if first_time else env.id,
        gateway_url=None
        if first_time or status == "error"
        else gateway_url(agents.public_url or base_url, env.id),
        openclaw_version=instance.openclaw_version,
        openclaw_config=instance.openclaw_config,
        region=instance.region,
        error_message=env.error_message if status == "error" else instance.error_message,
        created_at=instance.created_at,
        updated_at=max(instance.updated_at, env.updated_at),
    )


async def _probe(agents: Agents, instance: AgentInstanceModel, env: Environment) -> bool:
    if env.state is not EnvState.RUNNING or instance.provisioned_at is None:
        return False
    return await gateway_ready(agents.inside, instance.org_id, env.id)


async def _current(
    agents: Agents, principal: Principal, instance_id: str, permission: Permission, base_url: str
) -> InstanceView:
    async with agents.sessions() as session:
        instance, env = await _load(session, principal, instance_id, permission)
    return _view(agents, instance, env, base_url, ready=await _probe(agents, instance, env))


async def create_instance(
    agents: Agents, principal: Principal, body: InstanceCreate, base_url: str
) -> InstanceView:
    """Record the instance and create its environment; the provisioner writes the
    gateway's configuration once the environment runs (status `provisioning` until)."""
    org_id = require_org_key(principal)
    overrides = check_overrides(body.openclaw_config)
    async with agents.sessions() as session:
        rows = await model_providers.org_providers(session, org_id)
        provider = next((r for r in rows if r.name == body.model_provider), None) or next(
            (r for r in rows if r.kind == body.model_provider), None
        )
        if provider is None:
            raise InvalidRequest(
                f"no API key configured for model provider {body.model_provider!r}: "
                "store one with PUT /v1/model-providers/{name}"
            )
        if not (body.model or provider.default_model):
            raise InvalidRequest(
                f"model provider {provider.name!r} has no default model: name one (`model`)"
            )
        spec = EnvironmentCreate(
            image=agents.agent_image,
            command=["/bin/sh", "-c", LAUNCHER],
            env=GATEWAY_ENV,
            labels={"openclaw/instance": body.name[:1024]},
            memory_mb=INSTANCE_MEMORY_MB,
            auto_stop_interval=0,
            auto_restart=True,
        )
        env = await agents.environments.create(session, principal, spec)
        now = utcnow()
        instance = AgentInstanceModel(
            environment_id=env.id,
            org_id=org_id,
            name=body.name,
            model_provider=body.model_provider,
            provider_name=provider.name,
            model=body.model,
            openclaw_version=body.openclaw_version,
            openclaw_config=overrides,
            region=body.region,
            created_at=now,
            updated_at=now,
        )
        session.add(instance)
        await session.commit()
    return _view(agents, instance, env, base_url, ready=False)


async def get_instance(
    agents: Agents, principal: Principal, instance_id: str, base_url: str
) -> InstanceView:
    return await _current(agents, principal, instance_id, Permission.INSTANCES_READ, base_url)


async def list_instances(agents: Agents, principal: Principal, base_url: str) -> list[InstanceView]:
    """Every live instance of the organization, newest first (not probed: see status)."""
    org_id = require_org_key(principal)
    async with agents.sessions() as session:
        rows = await queries.instances_of(session, org_id)
    views = []
    for instance, row in rows:
        env = environment_from_model(row)
        ready = env.state is EnvState.RUNNING and instance.provisioned_at is not None
        views.append(_view(agents, instance, env, base_url, ready=ready))
    return views


async def _wait_ready(agents: Agents, principal: Principal, env_id: str, timeout: float) -> None:
    """Until the environment runs and its gateway answers (or the time is up)."""
    deadline = time.monotonic() + timeout
    try:
        await agents.environments.lifecycle.wait_for_state(
            principal, env_id, EnvState.RUNNING, timeout
        )
    except (WaitTimeout, Conflict):
        return
    while time.monotonic() < deadline:
        async with agents.sessions() as session:
            instance = await session.get(AgentInstanceModel, env_id)
        provisioned = instance is not None and instance.provisioned_at is not None
        if provisioned and await gateway_ready(agents.inside, instance.org_id, env_id):  # type: ignore[union-attr]
            return
        agents.provision_soon()
        await asyncio.sleep(0.5)


async def stop_instance(
    agents: Agents, principal: Principal, instance_id: str, base_url: str
) -> InstanceView:
    """Gateway shut down, environment stopped (files kept); 409 unless running.
    Answers once stopped, or after its grace period and a margin as it then is
    (`stopping`): the answer never claims a stop not reached."""
    require_org_key(principal)
    async with agents.sessions() as session:
        instance, env = await _load(
            session, principal, instance_id, Permission.ENVIRONMENTS_LIFECYCLE
        )
    if env.state is not EnvState.RUNNING:
        shown = _view(agents, instance, env, base_url, ready=False).status
        raise Conflict(f"Instance is not running (it is {shown}).")
    try:
        await agents.environments.lifecycle.stop_settled(
            principal, env.id, StopRequest(), only_from=_RUNNING
        )
    except WrongState as exc:  # it left running since it was read
        shown = instance_status(EnvState(exc.state), provisioned=True, gateway_ready=False)
        raise Conflict(f"Instance is not running (it is {shown}).") from exc
    return await _current(agents, principal, env.id, Permission.ENVIRONMENTS_LIFECYCLE, base_url)


async def start_instance(
    agents: Agents, principal: Principal, instance_id: str, base_url: str, *, restart: bool = False
) -> InstanceView:
    """Start a stopped instance (409 if it runs); restart stops it first if it runs."""
    require_org_key(principal)
    async with agents.sessions() as session:
        _instance, env = await _load(
            session, principal, instance_id, Permission.ENVIRONMENTS_LIFECYCLE
        )
        if not restart and env.state in (EnvState.RUNNING, EnvState.STARTING, EnvState.CREATING):
            raise Conflict("Instance is already running.")
        if env.state in (EnvState.DELETING, EnvState.DELETED):
            raise NotFound("Instance not found.")
        if restart:
            await agents.environments.lifecycle.request_restart(
                session, principal, env.id, StopRequest()
            )
        else:
            await agents.environments.lifecycle.request_start(session, principal, env.id)
        await session.commit()
    await _wait_ready(agents, principal, env.id, START_WAIT_S)
    return await _current(agents, principal, env.id, Permission.ENVIRONMENTS_LIFECYCLE, base_url)


async def delete_instance(agents: Agents, principal: Principal, instance_id: str) -> None:
    """Terminate: the environment and its files are deleted."""
    require_org_key(principal)
    async with agents.sessions() as session:
        instance, env = await _load(session, principal, instance_id, Permission.ENVIRONMENTS_WRITE)
        await agents.environments.lifecycle.request_delete(session, principal, env.id)
        instance.deleted_at = instance.updated_at = utcnow()
        await session.commit()


async def send_message(
    agents: Agents,
    principal: Principal,
    instance_id: str,
    body: dict[str, Any],
    *,
    session_key: str | None = None,
) -> Relayed:
    """Relay an OpenResponses request to the gateway; 409 unless running, 502 when
    the gateway does not answer."""
    async with agents.sessions() as session:
        instance, env = await _load(session, principal, instance_id, Permission.INSTANCES_INTERACT)
    if env.state is not EnvState.RUNNING or instance.provisioned_at is None:
        raise Conflict("Instance is not running.")
    return await relay(
        agents.inside, instance.org_id, env.id, body,
        session_key=session_key, timeout=RESPONSE_TIMEOUT_S,
    )  # fmt: skip
