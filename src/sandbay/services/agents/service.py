"""Agents inside environments: execute a run (checks, project preparation, launch),
read and cancel runs, and the agents and models an organization can use. 424 when
the environment cannot run the agent: not running, CLI not in its image, or no
model credentials."""

from dataclasses import dataclass, replace

import httpx

from sandbay.db.models import AgentRunModel
from sandbay.db.queries import agents as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain import ids
from sandbay.domain.agent_transcripts import Redactor
from sandbay.domain.agents import (
    AGENT_EXECUTABLES,
    AGENT_NAMES,
    AGENT_PROVIDERS,
    AgentExecuteRequest,
    AgentKind,
    AgentModels,
    AgentModelsEntry,
    AgentRun,
    AgentRunStatus,
    require_model,
)
from sandbay.domain.errors import Conflict, FailedDependency, InvalidRequest, NotFound
from sandbay.domain.exec import ExecRequest
from sandbay.domain.files import WORKSPACE
from sandbay.domain.keys import Permission, Principal
from sandbay.kit.loops import Hint
from sandbay.services.agents import providers as model_providers
from sandbay.services.agents.drivers.builtin import BuiltinDriver
from sandbay.services.agents.drivers.cli import CliDriver
from sandbay.services.agents.gateway import InstanceProvisioner
from sandbay.services.agents.providers import Credentials
from sandbay.services.agents.relay import ModelRelay
from sandbay.services.agents.runs import AgentRuns, Driver, LiveRun, RunSpec, run_from_row
from sandbay.services.agents.secrets import SecretBox
from sandbay.services.environments.records import get_environment
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.events.bus import EventBus
from sandbay.services.inside import exec as exec_service
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import Target, open_target
from sandbay.services.tenancy.auth import require

RUN_ID = "run"
#: Checks the CLI is there, then makes the project directory or clones into it.
_PREPARE = r"""
exe=$1 dir=$2 url=$3
if [ -n "$exe" ] && ! command -v "$exe" >/dev/null 2>&1; then exit 10; fi
if [ -n "$url" ]; then
  if [ -d "$dir/.git" ]; then
    [ "$(git -C "$dir" remote get-url origin 2>/dev/null)" = "$url" ] || exit 11
  elif [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then exit 12
  else git clone --quiet -- "$url" "$dir" 2>&1 || exit 13
  fi
else
  mkdir -p -- "$dir" || exit 14
fi
"""


@dataclass(frozen=True, slots=True)
class Agents:
    """The agents capability as one object: model-provider credentials and their
    box, runs in flight, the OpenClaw provisioning, and their defaults."""

    sessions: async_sessionmaker[AsyncSession]
    inside: InsideService
    environments: EnvironmentsService
    box: SecretBox
    runs: AgentRuns
    http: httpx.AsyncClient
    provisioner: InstanceProvisioner
    relay: ModelRelay
    provision_soon: Hint
    default_timeout: float
    agent_image: str
    public_url: str | None

    @property
    def bus(self) -> EventBus:
        return self.inside.bus

    async def close(self) -> None:
        await self.runs.close()
        await self.http.aclose()


def acting_for(target: Target, run_id: str) -> Principal:
    """The platform acting inside the environment for a caller already authorised."""
    return Principal.for_system(target.org_id, f"agent:{run_id}")


async def _target(agents: Agents, principal: Principal, env: str) -> Target:
    try:
        return await open_target(agents.sessions, principal, env, Permission.AGENTS_EXECUTE)
    except Conflict as exc:  # not running, or self-hosted: the agent cannot run there
        raise FailedDependency(exc.message) from exc


async def _credentials(agents: Agents, org_id: str, body: AgentExecuteRequest) -> Credentials:
    async with agents.sessions() as session:
        return await model_providers.resolve(
            session, agents.box, org_id, kinds=AGENT_PROVIDERS[body.agent], name=body.provider
        )


async def _prepare(
    agents: Agents, target: Target, run_id: str, agent: AgentKind, body: AgentExecuteRequest
) -> str:
    """The working directory, made (or cloned) if needed; 424 if the CLI is missing."""
    cwd = body.project or WORKSPACE
    exe = AGENT_EXECUTABLES[agent] or ""
    request = ExecRequest(
        command=["/bin/sh", "-c", _PREPARE, "sh", exe, cwd, body.git_url or ""],
        cwd="/",
        timeout=600,
    )
    result = await exec_service.run_command(
        agents.inside, acting_for(target, run_id), target.environment_id, request
    )
    output = (result.stdout + result.stderr).strip()[-500:]
    code = result.exit_code
    if code == 10:
        raise FailedDependency(
            f"the {exe!r} CLI is not installed in this environment's image "
            f"(create it with image {agents.agent_image!r})"
        )
    if code == 11:
        raise Conflict(f"{cwd} holds another repository than {body.git_url}")
    if code == 12:
        raise Conflict(f"{cwd} exists and is not empty; cannot clone into it")
    if code == 13:
        raise InvalidRequest(f"git clone failed: {output}")
    if code != 0:
        raise InvalidRequest(f"cannot prepare {cwd}: {output or f'exit code {code}'}")
    return cwd


def _relayed(agents: Agents, creds: Credentials, run_id: str, env_id: str) -> Credentials:
    """What a CLI inside the environment is given: the relay's URL and a credential of
    this run only, never the provider's key (docs/model-relay.md)."""
    return replace(
        creds, base_url=agents.relay.url(), api_key=agents.relay.keys.for_run(run_id, env_id)
    )


def _driver(
    agents: Agents, target: Target, spec: RunSpec, creds: Credentials, model: str
) -> Driver:
    principal = acting_for(target, spec.run_id)
    if spec.agent is AgentKind.BUILTIN:  # calls the model from the server itself
        return BuiltinDriver(
            agents.inside, principal, target.environment_id, model, creds, spec.cwd,
            spec.prompt, agents.http,
        )  # fmt: skip
    return CliDriver(
        agents.inside, principal, target.environment_id, spec.agent, model, creds, spec.cwd,
        spec.prompt, spec.timeout,
    )  # fmt: skip


async def execute(
    agents: Agents, principal: Principal, env: str, body: AgentExecuteRequest
) -> LiveRun:
    """Check, prepare the project, and start the run; its events follow on the LiveRun."""
    target = await _target(agents, principal, env)
    creds = await _credentials(agents, target.org_id, body)
    model = require_model(body.model or creds.default_model, body.agent)
    run_id = ids.new_id(RUN_ID)
    given = creds
    if body.agent is not AgentKind.BUILTIN:
        given = _relayed(agents, creds, run_id, target.environment_id)
    cwd = await _prepare(agents, target, run_id, body.agent, body)
    spec = RunSpec(
        run_id=run_id,
        org_id=target.org_id,
        environment_id=target.environment_id,
        agent=body.agent,
        model=model,
        provider=creds.provider,
        prompt=body.prompt,
        cwd=cwd,
        git_url=body.git_url,
        timeout=body.timeout or agents.default_timeout,
        actor=principal.actor,
    )
    redactor = Redactor(tuple({creds.api_key, given.api_key}))
    return await agents.runs.launch(spec, _driver(agents, target, spec, given, model), redactor)


async def _row(agents: Agents, principal: Principal, env: str, run_id: str) -> AgentRunModel:
    async with agents.sessions() as session:
        environment = await get_environment(
            session, principal, env, Permission.AGENTS_EXECUTE, include_deleted=True
        )
        row = await session.get(AgentRunModel, run_id)
    if row is None or row.environment_id != environment.id:
        raise NotFound(f"no agent run {run_id!r} in environment {env!r}")
    return row


async def get_run(agents: Agents, principal: Principal, env: str, run_id: str) -> AgentRun:
    """A run with its transcript: live from this process, else as recorded."""
    row = await _row(agents, principal, env, run_id)
    live = agents.runs.get(run_id)
    return live.view() if live is not None else run_from_row(row)


async def list_runs(agents: Agents, principal: Principal, env: str, limit: int) -> list[AgentRun]:
    async with agents.sessions() as session:
        environment = await get_environment(
            session, principal, env, Permission.AGENTS_EXECUTE, include_deleted=True
        )
        rows = await queries.runs_of(session, environment.id, limit=limit)
    out = []
    for row in rows:
        live = agents.runs.get(row.id)
        run = live.view() if live is not None else run_from_row(row)
        out.append(run.model_copy(update={"events": []}))
    return out


async def cancel_run(agents: Agents, principal: Principal, env: str, run_id: str) -> AgentRun:
    """Cancel a running run (its processes are killed). 409 once it has ended."""
    row = await _row(agents, principal, env, run_id)
    live = await agents.runs.cancel(run_id)
    if live is not None:
        return live.view()
    if row.status is AgentRunStatus.RUNNING:
        raise Conflict("the run is not held by this server (another replica runs it)")
    raise Conflict(f"the run has already ended ({row.status})")


async def list_models(agents: Agents, principal: Principal) -> AgentModels:
    org_id = require(principal, Permission.AGENTS_EXECUTE)
    async with agents.sessions() as session:
        rows = await model_providers.org_providers(session, org_id)
    entries = []
    for agent in AgentKind:
        usable = model_providers.usable_by(agent, rows)
        models: list[str] = []
        for row in usable:
            models += [m for m in row.models or [] if m not in models]
        default = next((r.default_model for r in usable if r.default_model), None)
        entries.append(
            AgentModelsEntry(
                agent=agent,
                name=AGENT_NAMES[agent],
                available=bool(usable),
                providers=[r.name for r in usable],
                models=models,
                default_model=default,
            )
        )
    return AgentModels(data=entries)
