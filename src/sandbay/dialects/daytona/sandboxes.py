"""Daytona's sandbox API at the root (`/sandbox…`, `/config`): what its Python SDK
calls to create, find, list (every filter and sort), label, start, stop, recover,
resize, archive and delete sandboxes, to set their intervals, TTL, public status and
network policy, and to refresh their activity. Every URL handed out is built from
the address clients reach the server at (`http.public_url`, or a trusted proxy's
forwarded scheme and host)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

import sandbay
from sandbay.api.deps import AccessDep, EnvironmentsDep, LifecycleDep, SessionDep, SnapshotsDep
from sandbay.dialects.kit import native
from sandbay.domain.environments import Environment, EnvironmentUpdate, StopRequest
from sandbay.domain.errors import InvalidRequest, WrongState
from sandbay.domain.keys import Principal
from sandbay.domain.search import EnvironmentSearch
from sandbay.domain.snapshots import SNAPSHOTTABLE, ForkRequest, SnapshotCreate
from sandbay.domain.states import EnvState
from sandbay.services.access.service import AccessService
from sandbay.services.environments import adjust
from sandbay.services.environments import records as envs
from sandbay.services.environments.search import search_environments
from sandbay.services.environments.snapshots import being_made
from sandbay.services.images.service import waiting_build

from .errors import DaytonaPrincipal, stop_refused
from .listing import LIST_PARAMS, list_query
from .shapes import (
    MIB_PER_GB,
    DaytonaCreateSandbox,
    DaytonaSandbox,
    DaytonaSandboxList,
    interval_update,
    secrets_of,
    split_list,
    to_create,
)

router = APIRouter(prefix="/sandbox", tags=["daytona"])
#: The daemon's generated client posts JSON bodies without a Content-Type.
config_router = APIRouter(tags=["daytona"], strict_content_type=False)

SandboxIdOrName = Annotated[
    str, Path(alias="sandboxIdOrName", description="ID or name of the sandbox")
]
Minutes = Annotated[int, Path(ge=-1, le=10 * 365 * 24 * 60)]


def base_url(request: Request, access: AccessService) -> str:
    """This server as the client reaches it (no trailing slash)."""
    client = request.client
    return access.address.base_url(
        scheme=request.url.scheme,
        host=request.headers.get("host") or request.url.netloc,
        peer=client.host if client else None,
        forwarded_proto=request.headers.get("x-forwarded-proto"),
        forwarded_host=request.headers.get("x-forwarded-host"),
    )


async def public_base(request: Request, access: AccessDep) -> str:
    return base_url(request, access)


async def toolbox_base(request: Request, access: AccessDep) -> str:
    """Where the sandboxes' toolbox is served: this server, under `/toolbox`."""
    return base_url(request, access) + "/toolbox"


#: The server's base URL and its toolbox URL, as the client reaches them.
PublicBase = Annotated[str, Depends(public_base)]
ToolboxUrl = Annotated[str, Depends(toolbox_base)]


def _out(toolbox: str, env: Environment) -> DaytonaSandbox:
    return DaytonaSandbox.of(env, toolbox_url=toolbox)


async def _shown(session: SessionDep, toolbox: str, env: Environment) -> DaytonaSandbox:
    """The sandbox, showing `pending_build`/`building_snapshot` while it waits for
    its own image (the SDK follows the build's log only from those states), and
    `snapshotting` while a snapshot of it is being made (`create_snapshot` waits
    for it to end)."""
    build = await waiting_build(session, env)
    shown = DaytonaSandbox.of(env, toolbox_url=toolbox, build=build)
    if env.state in SNAPSHOTTABLE and await being_made(session, env.id):
        shown.state = "snapshotting"
    return shown


class DaytonaLabels(BaseModel):
    labels: dict[str, str]


class DaytonaName(BaseModel):
    """ForkSandbox and CreateSandboxSnapshot: a name (the fork's, the snapshot's)."""

    name: str | None = Field(None, max_length=255)


class DaytonaUrl(BaseModel):
    url: str


class DaytonaNetworkSettings(BaseModel):
    network_block_all: bool | None = Field(None, alias="networkBlockAll")
    network_allow_list: str | None = Field(None, alias="networkAllowList", max_length=4096)
    domain_allow_list: str | None = Field(None, alias="domainAllowList", max_length=4096)


class DaytonaResize(BaseModel):
    cpu: int | None = Field(None, ge=1, le=1024)
    memory: int | None = Field(None, ge=1, le=16 * 1024, description="GB")
    disk: int | None = Field(None, ge=1, le=64 * 1024, description="GB")


class DaytonaSandboxSecrets(BaseModel):
    """UpdateSandboxSecrets: the whole set, `[{VAR: secret name}, …]`."""

    secrets: list[dict[str, str]] = Field(max_length=256)


def network_update(body: DaytonaNetworkSettings) -> EnvironmentUpdate:
    """Daytona's rules: blocking all (or unblocking) without lists clears both allow
    lists; a CIDR or domain allow list lifts the block; an empty list clears it."""
    block = body.network_block_all
    if block is None and body.network_allow_list is None and body.domain_allow_list is None:
        raise InvalidRequest("give networkBlockAll, networkAllowList or domainAllowList")
    cleared: list[str] | None = [] if block is not None else None
    allow, domains = cleared, cleared
    if body.network_allow_list is not None:
        allow = split_list(body.network_allow_list)
    if body.domain_allow_list is not None:
        domains = split_list(body.domain_allow_list)
    if allow or domains:
        block = False
    return native(
        EnvironmentUpdate,
        network_block_all=block,
        network_allow_list=allow,
        network_domain_allow_list=domains,
    )


@router.post("")
async def create_sandbox(
    body: DaytonaCreateSandbox,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    environments: EnvironmentsDep,
    snapshots: SnapshotsDep,
) -> DaytonaSandbox:
    """Create a sandbox from a snapshot (an image, or a sandbox's snapshot: its files
    copied in) or a `FROM <image>` build; it starts at once (state `creating`, then
    `starting`, then `started`)."""
    create = to_create(body)
    if body.snapshot and await snapshots.find(session, principal, body.snapshot) is not None:
        create = create.model_copy(update={"image": None, "snapshot": body.snapshot})
    env = await environments.create(session, principal, create)
    if body.ttl_minutes:
        env = await adjust.set_ttl(session, principal, env.id, body.ttl_minutes)
    return await _shown(session, toolbox, env)


@router.get("")
async def list_sandboxes(
    request: Request,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    search: Annotated[EnvironmentSearch, Depends(list_query)],
) -> DaytonaSandboxList:
    """Sandboxes of the organization, filtered (ID and name prefixes, labels, states,
    snapshots, sizes, public, recoverable, times) and sorted (by default most
    recently active first), a page at a time (`nextCursor`)."""
    unsupported = sorted(set(request.query_params) - LIST_PARAMS)
    if unsupported:
        raise InvalidRequest(f"filter not supported by this server: {', '.join(unsupported)}")
    rows, next_cursor = await search_environments(session, principal, search)
    return DaytonaSandboxList(items=[_out(toolbox, r) for r in rows], next_cursor=next_cursor)


@router.get("/{sandboxIdOrName}")
async def get_sandbox(
    sandbox: SandboxIdOrName, toolbox: ToolboxUrl, session: SessionDep, principal: DaytonaPrincipal
) -> DaytonaSandbox:
    """One sandbox, by ID or name."""
    return await _shown(session, toolbox, await envs.read_environment(session, principal, sandbox))


@router.delete("/{sandboxIdOrName}")
async def delete_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Delete (destroy) a sandbox with its workspace, from any state."""
    return _out(toolbox, await lifecycle.request_delete(session, principal, sandbox))


@router.post("/{sandboxIdOrName}/start")
async def start_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Start a stopped sandbox (an archived one is restored first)."""
    return _out(toolbox, await lifecycle.request_start(session, principal, sandbox))


@router.post("/{sandboxIdOrName}/stop")
async def stop_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
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
            only_from=frozenset({EnvState.RUNNING, EnvState.PAUSED}),
        )
    except WrongState as exc:
        raise stop_refused(exc) from exc
    return _out(toolbox, env)


@router.post("/{sandboxIdOrName}/pause")
async def pause_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Pause a started sandbox: its processes are frozen with their memory (`pausing`,
    then `paused`); `start` resumes it where it was."""
    return _out(toolbox, await lifecycle.request_pause(session, principal, sandbox))


@router.post("/{sandboxIdOrName}/fork")
async def fork_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    snapshots: SnapshotsDep,
    body: DaytonaName | None = None,
) -> DaytonaSandbox:
    """Fork: a new sandbox with this one's root filesystem and /workspace, from a
    snapshot of it (a started one keeps running, frozen only while what changed
    during the copy is copied again). The fork is `creating` until its files are
    copied, then starts; it has its own id, volume and address, this one's labels
    and settings, none of its SSH or preview tokens."""
    request = native(ForkRequest, count=1, name=body.name if body else None)
    result = await snapshots.fork(session, principal, sandbox, request)
    return await _shown(session, toolbox, result.environments[0])


@router.get("/{sandboxIdOrName}/forks")
async def list_forks(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    principal: DaytonaPrincipal,
    snapshots: SnapshotsDep,
    include_destroyed: Annotated[bool, Query(alias="includeDestroyed")] = False,
) -> list[DaytonaSandbox]:
    """The sandboxes forked from this one (or made from its snapshots), oldest first."""
    forks = await snapshots.forks(principal, sandbox, include_deleted=include_destroyed)
    return [_out(toolbox, env) for env in forks]


@router.post("/{sandboxIdOrName}/snapshot")
async def snapshot_sandbox(
    sandbox: SandboxIdOrName,
    body: DaytonaName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    snapshots: SnapshotsDep,
) -> DaytonaSandbox:
    """Snapshot the sandbox's root filesystem and /workspace under `name`; a sandbox
    created with `snapshot: name` starts from those files (it waits while the copy
    is made). The sandbox keeps its state."""
    if not body.name:
        raise InvalidRequest("name is required")
    await snapshots.request(session, principal, sandbox, native(SnapshotCreate, name=body.name))
    return await _shown(session, toolbox, await envs.read_environment(session, principal, sandbox))


@router.post("/{sandboxIdOrName}/archive")
async def archive_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
) -> DaytonaSandbox:
    """Archive a stopped sandbox: its filesystem goes to the archive store."""
    return _out(toolbox, await lifecycle.request_archive(session, principal, sandbox))


@router.put("/{sandboxIdOrName}/labels")
async def replace_labels(
    sandbox: SandboxIdOrName,
    body: DaytonaLabels,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Replace the sandbox's labels."""
    update = native(EnvironmentUpdate, labels=body.labels)
    return _out(toolbox, await envs.update_environment(session, principal, sandbox, update))


async def _set_interval(
    kind: str,
    sandbox: str,
    minutes: int,
    toolbox: str,
    session: SessionDep,
    principal: Principal,
) -> DaytonaSandbox:
    update = interval_update(kind, minutes)
    return _out(toolbox, await envs.update_environment(session, principal, sandbox, update))


@router.post("/{sandboxIdOrName}/autostop/{interval}")
async def set_autostop_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes without activity before the sandbox stops; 0 never."""
    return await _set_interval("autostop", sandbox, interval, toolbox, session, principal)


@router.post("/{sandboxIdOrName}/autoarchive/{interval}")
async def set_auto_archive_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes stopped before the sandbox is archived; 0 never."""
    return await _set_interval("autoarchive", sandbox, interval, toolbox, session, principal)


@router.post("/{sandboxIdOrName}/autodelete/{interval}")
async def set_auto_delete_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes stopped before the sandbox is deleted; 0 as soon as it stops; -1 never."""
    return await _set_interval("autodelete", sandbox, interval, toolbox, session, principal)


@router.post("/{sandboxIdOrName}/autopause/{interval}")
async def set_auto_pause_interval(
    sandbox: SandboxIdOrName,
    interval: Minutes,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Minutes without activity before the sandbox is paused (a tier before auto-stop,
    which keeps counting while it is paused); 0 never."""
    return await _set_interval("autopause", sandbox, interval, toolbox, session, principal)


@router.post("/{sandboxIdOrName}/ttl/{ttlMinutes}")
async def set_ttl(
    sandbox: SandboxIdOrName,
    ttl: Annotated[float, Path(alias="ttlMinutes", ge=0, le=adjust.MAX_TTL_MINUTES)],
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSandbox:
    """Destroy the sandbox this many minutes from now, whatever its state; 0 clears it
    (`autoDestroyAt`). Fractions of a minute are taken too."""
    return _out(toolbox, await adjust.set_ttl(session, principal, sandbox, ttl))


@router.post("/{sandboxIdOrName}/public/{isPublic}")
async def update_public_status(
    sandbox: SandboxIdOrName,
    is_public: Annotated[bool, Path(alias="isPublic")],
    toolbox: ToolboxUrl,
    principal: DaytonaPrincipal,
    access: AccessDep,
) -> DaytonaSandbox:
    """Whether its preview URLs open without a token."""
    update = native(EnvironmentUpdate, public=is_public)
    return _out(toolbox, await access.update_environment(principal, sandbox, update))


@router.post("/{sandboxIdOrName}/network-settings")
async def update_network_settings(
    sandbox: SandboxIdOrName,
    body: DaytonaNetworkSettings,
    toolbox: ToolboxUrl,
    principal: DaytonaPrincipal,
    access: AccessDep,
) -> DaytonaSandbox:
    """Block all outbound traffic, or allow only some CIDRs or domain names (`*.`
    wildcards too); a running sandbox has the new policy in force when this answers."""
    update = network_update(body)
    return _out(toolbox, await access.update_environment(principal, sandbox, update))


@router.put("/{sandboxIdOrName}/secrets")
async def update_sandbox_secrets(
    sandbox: SandboxIdOrName,
    body: DaytonaSandboxSecrets,
    toolbox: ToolboxUrl,
    principal: DaytonaPrincipal,
    access: AccessDep,
) -> DaytonaSandbox:
    """Replace the secrets the sandbox is given (`[]` detaches all): processes started
    afterwards see the new placeholders, and the egress proxy swaps them from the
    moment this answers."""
    update = native(EnvironmentUpdate, secrets=secrets_of(body.secrets))
    return _out(toolbox, await access.update_environment(principal, sandbox, update))


@router.post("/{sandboxId}/last-activity", status_code=201, response_class=Response)
async def update_last_activity(
    sandbox: Annotated[str, Path(alias="sandboxId")],
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> Response:
    """Restart the idle clock that auto-stop counts from."""
    await adjust.refresh_activity(session, principal, sandbox)
    return Response(status_code=201)


@router.post("/{sandboxIdOrName}/recover")
async def recover_sandbox(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: DaytonaPrincipal,
    lifecycle: LifecycleDep,
    skip_start: Annotated[bool, Query(alias="skipStart")] = False,
) -> DaytonaSandbox:
    """Out of `error`: started again (the files in its workspace kept), or with
    `skipStart` left stopped."""
    if skip_start:
        env = await envs.read_environment(session, principal, sandbox)
        if not DaytonaSandbox.of(env, toolbox_url=toolbox).recoverable:
            raise InvalidRequest("Sandbox is not in a recoverable state")
        stop = StopRequest()
        errored = frozenset({EnvState.ERROR})
        env = await lifecycle.request_stop(session, principal, env.id, stop, only_from=errored)
        return _out(toolbox, env)
    return _out(toolbox, await adjust.recover(lifecycle, session, principal, sandbox))


@router.post("/{sandboxIdOrName}/resize")
async def resize_sandbox(
    sandbox: SandboxIdOrName,
    body: DaytonaResize,
    toolbox: ToolboxUrl,
    principal: DaytonaPrincipal,
    environments: EnvironmentsDep,
) -> DaytonaSandbox:
    """New CPU (cores) and memory (GB): a started sandbox grows at once (the engine
    changes its limits live), a stopped one may also shrink. The disk cannot change."""
    env = await environments.resize(
        principal,
        sandbox,
        cpu=body.cpu,
        memory_mb=body.memory * MIB_PER_GB if body.memory is not None else None,
        disk_gb=body.disk,
    )
    return _out(toolbox, env)


@router.get("/{sandboxIdOrName}/toolbox-proxy-url")
async def get_toolbox_proxy_url(
    sandbox: SandboxIdOrName, toolbox: ToolboxUrl, session: SessionDep, principal: DaytonaPrincipal
) -> DaytonaUrl:
    """Base URL of the sandbox's toolbox (file system, processes)."""
    await envs.read_environment(session, principal, sandbox)
    return DaytonaUrl(url=toolbox)


@config_router.get("/config")
async def get_config(
    base: PublicBase, toolbox: ToolboxUrl, environments: EnvironmentsDep
) -> dict[str, Any]:
    """Daytona's deployment configuration, as far as sandbay has one (no OIDC, no
    analytics service: metrics are the native API's)."""
    return {
        "version": sandbay.__version__,
        "oidc": {"issuer": "", "clientId": "", "audience": "", "provider": "none"},
        "linkedAccountsEnabled": False,
        "announcements": {},
        "proxyTemplateUrl": "",
        "proxyToolboxUrl": toolbox,
        "defaultSnapshot": environments.placement.default_image,
        "dashboardUrl": base,
        "maxAutoArchiveInterval": 10 * 365 * 24 * 60,
        "maintananceMode": False,
        "environment": "sandbay",
        "analyticsApiUrl": None,
    }


class DaytonaUpdateEnv(BaseModel):
    set: dict[str, str] | None = None
    unset: list[str] | None = Field(None, max_length=256)
    unset_value_prefix: str | None = Field(None, alias="unsetValuePrefix", max_length=1024)


@config_router.post("/toolbox/{sandboxId}/env", tags=["daytona-toolbox"])
async def update_env(
    sandbox: Annotated[str, Path(alias="sandboxId")],
    body: DaytonaUpdateEnv,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> dict[str, str]:
    """The daemon's environment: `unset` names (and, with `unsetValuePrefix`, every
    variable whose value starts with it and that `set` does not name), then `set`.
    Processes started afterwards (exec, sessions, PTYs, SSH) see it; the running
    workload keeps its own. Answers the variables now in force."""
    env = await adjust.update_variables(
        session,
        principal,
        sandbox,
        set_=body.set or {},
        unset=body.unset or [],
        unset_value_prefix=body.unset_value_prefix,
    )
    return dict(env.env)
