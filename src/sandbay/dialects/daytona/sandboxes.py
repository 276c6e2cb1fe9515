"""Daytona's sandbox API at the root (`/sandbox…`, `/config`): what its Python SDK
calls to create, find, list, label, start, stop, archive and delete sandboxes and to
set their auto-stop, auto-archive and auto-delete intervals."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

import sandbay
from sandbay.api.deps import EnvironmentsDep, LifecycleDep, SessionDep
from sandbay.dialects.kit import native
from sandbay.domain.environments import Environment, EnvironmentUpdate, StopRequest
from sandbay.domain.errors import InvalidRequest, WrongState
from sandbay.domain.keys import Principal
from sandbay.domain.states import EnvState
from sandbay.services.environments import records as envs

from .errors import DaytonaPrincipal, stop_refused
from .shapes import (
    NATIVE_STATE,
    DaytonaCreateSandbox,
    DaytonaSandbox,
    DaytonaSandboxList,
    interval_update,
    to_create,
)

router = APIRouter(prefix="/sandbox", tags=["daytona"])
config_router = APIRouter(tags=["daytona"])

SandboxIdOrName = Annotated[
    str, Path(alias="sandboxIdOrName", description="ID or name of the sandbox")
]
Minutes = Annotated[int, Path(ge=-1, le=10 * 365 * 24 * 60)]
#: Query parameters of `GET /sandbox` honoured here; any other filter is refused
#: rather than silently ignored.
LIST_PARAMS = frozenset(
    {"cursor", "limit", "labels", "states", "includeErroredDeleted", "includeWarm", "sort", "order"}
)


def toolbox_url(request: Request) -> str:
    """Where the sandboxes' toolbox is served: this server, under `/toolbox`."""
    return str(request.base_url).rstrip("/") + "/toolbox"


def _out(request: Request, env: Environment) -> DaytonaSandbox:
    return DaytonaSandbox.of(env, toolbox_url=toolbox_url(request))


class DaytonaLabels(BaseModel):
    labels: dict[str, str]


class DaytonaUrl(BaseModel):
    url: str


def _label_filter(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest("Invalid labels JSON format")
    return [f"{k}={v}" for k, v in parsed.items()]


def _state_filter(names: list[str]) -> list[EnvState] | None:
    unknown = [n for n in names if n not in NATIVE_STATE]
    if unknown:
        raise InvalidRequest(f"unknown state {unknown[0]!r}")
    return [NATIVE_STATE[n] for n in names] or None


@router.post("")
async def create_sandbox(
    body: DaytonaCreateSandbox,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    environments: EnvironmentsDep,
) -> DaytonaSandbox:
    """Create a sandbox from a snapshot (an image) or a `FROM <image>` build; it
    starts at once (state `creating`, then `starting`, then `started`)."""
    env = await environments.create(session, principal, to_create(body))
    return _out(request, env)


@router.get("")
async def list_sandboxes(
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    labels: Annotated[str | None, Query(description="JSON-encoded labels to match")] = None,
    states: Annotated[list[str] | None, Query()] = None,
) -> DaytonaSandboxList:
    """Sandboxes of the organization, newest first, a page at a time (`nextCursor`)."""
    unsupported = sorted(set(request.query_params) - LIST_PARAMS)
    if unsupported:
        raise InvalidRequest(f"filter not supported by this server: {', '.join(unsupported)}")
    rows, next_cursor = await envs.list_environments(
        session,
        principal,
        states=_state_filter(states or []),
        labels=_label_filter(labels),
        limit=limit,
        cursor=cursor,
    )
    return DaytonaSandboxList(items=[_out(request, r) for r in rows], next_cursor=next_cursor)


@router.get("/{sandboxIdOrName}")
async def get_sandbox(
    sandbox: SandboxIdOrName, request: Request, session: SessionDep, principal: DaytonaPrincipal
) -> DaytonaSandbox:
    """One sandbox, by ID or name."""
    return _out(request, await envs.read_environment(session, principal, sandbox))


@router.delete("/{sandboxIdOrName}")
async def delete_sandbox(
    sandbox: SandboxIdOrName,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Delete (destroy) a sandbox with its workspace, from any state."""
    return _out(request, await lifecycle.request_delete(session, principal, sandbox))


@router.post("/{sandboxIdOrName}/start")
async def start_sandbox(
    sandbox: SandboxIdOrName,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Start a stopped sandbox (an archived one is restored first)."""
    return _out(request, await lifecycle.request_start(session, principal, sandbox))


@router.post("/{sandboxIdOrName}/stop")
async def stop_sandbox(
    sandbox: SandboxIdOrName,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
    force: Annotated[bool, Query(description="SIGKILL instead of SIGTERM")] = False,
) -> DaytonaSandbox:
    """Stop a started sandbox, freeing its CPU and memory and keeping its files: it
    answers `state: stopping`, `desiredState: stopped`, then becomes `stopped`. With
    `autoDeleteInterval: 0` it is deleted once stopped."""
    try:
        env = await lifecycle.request_stop(
            session,
            principal,
            sandbox,
            StopRequest(force=force),
            only_from=frozenset({EnvState.RUNNING}),
        )
    except WrongState as exc:
        raise stop_refused(exc) from exc
    return _out(request, env)


@router.post("/{sandboxIdOrName}/archive")
async def archive_sandbox(
    sandbox: SandboxIdOrName,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Archive a stopped sandbox: its filesystem goes to the archive store."""
    return _out(request, await lifecycle.request_archive(session, principal, sandbox))


@router.put("/{sandboxIdOrName}/labels")
async def replace_labels(
    sandbox: SandboxIdOrName,
    body: DaytonaLabels,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Replace the sandbox's labels."""
    update = native(EnvironmentUpdate, labels=body.labels)
    return _out(request, await envs.update_environment(session, principal, sandbox, update))


async def _set_interval(
    kind: str,
    sandbox: str,
    minutes: int,
    request: Request,
    session: SessionDep,
    principal: Principal,
) -> DaytonaSandbox:
    update = interval_update(kind, minutes)
    return _out(request, await envs.update_environment(session, principal, sandbox, update))


@router.post("/{sandboxIdOrName}/autostop/{interval}")
async def set_autostop_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes without activity before the sandbox stops; 0 never."""
    return await _set_interval("autostop", sandbox, interval, request, session, principal)


@router.post("/{sandboxIdOrName}/autoarchive/{interval}")
async def set_auto_archive_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes stopped before the sandbox is archived; 0 never."""
    return await _set_interval("autoarchive", sandbox, interval, request, session, principal)


@router.post("/{sandboxIdOrName}/autodelete/{interval}")
async def set_auto_delete_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes stopped before the sandbox is deleted; 0 as soon as it stops; -1 never."""
    return await _set_interval("autodelete", sandbox, interval, request, session, principal)


@router.get("/{sandboxIdOrName}/toolbox-proxy-url")
async def get_toolbox_proxy_url(
    sandbox: SandboxIdOrName, request: Request, session: SessionDep, principal: DaytonaPrincipal
) -> DaytonaUrl:
    """Base URL of the sandbox's toolbox (file system, processes)."""
    await envs.read_environment(session, principal, sandbox)
    return DaytonaUrl(url=toolbox_url(request))


@config_router.get("/config")
async def get_config(request: Request, environments: EnvironmentsDep) -> dict[str, Any]:
    """Daytona's deployment configuration, as far as sandbay has one (no OIDC, no
    analytics service: metrics are the native API's)."""
    base = str(request.base_url).rstrip("/")
    return {
        "version": sandbay.__version__,
        "oidc": {"issuer": "", "clientId": "", "audience": "", "provider": "none"},
        "linkedAccountsEnabled": False,
        "announcements": {},
        "proxyTemplateUrl": "",
        "proxyToolboxUrl": toolbox_url(request),
        "defaultSnapshot": environments.placement.default_image,
        "dashboardUrl": base,
        "maxAutoArchiveInterval": 10 * 365 * 24 * 60,
        "maintananceMode": False,
        "environment": "sandbay",
        "analyticsApiUrl": None,
    }
