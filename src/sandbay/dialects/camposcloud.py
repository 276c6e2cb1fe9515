"""The CamposCloud dialect: apps at `/v1/apps…` (Bearer). An app is an environment
whose workload is `startupCommand` after `installDependenciesCmd`, on the image of its
`runtimeEnvironment`; `autoRestartEnabled` is the restart policy, `exposedViaWeb` its
public preview, `allocatedMemoryMB` and `allocatedVCpu` its limits. A thin adapter over
the native services; an app is a long-running service, so it never auto-stops.

From CamposCloud's documentation and its Python SDK: `POST /v1/apps/create`
(multipart form: `appName`, `mainFile`, `memoryMB`, `runtimeEnvironment`,
`exposedViaWeb`, `autoRestartEnabled`, `startupCommand`, `teamId`, `file`), `GET
/v1/apps` (`{"applications": [...]}`, `limit`, `page`), `GET /v1/apps/{appId}`,
`POST …/start|stop|restart`, `DELETE /v1/apps/{appId}/delete`, all answering the app
object of the brief. Designed here (README): `GET …/logs` (`{"logs": "…"}`), the error
body `{"message": "…"}`, the `status` words, and create without the zip `file`."""

import shlex
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection

from sandbay.api.deps import (
    EnvironmentsDep,
    InsideDep,
    LifecycleDep,
    PrincipalDep,
    SessionDep,
    get_platform,
)
from sandbay.dialects.error_shapes import CAMPOSCLOUD
from sandbay.dialects.kit import (
    Dialect,
    coarse_states,
    command_text,
    display_name,
    is_native_name,
    iso_millis,
    message_body,
    native,
    whole_up,
)
from sandbay.domain.environments import Environment, EnvironmentCreate, StopRequest
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.metrics import ResourceMetrics
from sandbay.domain.states import EnvState
from sandbay.services.environments import records as envs
from sandbay.services.inside import logs

PREFIX = "/v1/apps"
router = APIRouter(prefix=PREFIX, tags=["camposcloud"])

NAME_LABEL = "camposcloud/name"
RUNTIME_LABEL = "camposcloud/runtime"
MAX_LOG_BYTES = 1024 * 1024
STATUS: dict[EnvState, str] = coarse_states(
    starting="starting",
    running="active",
    stopping="stopping",
    stopped="stopped",
    deleting="deleting",
    deleted="deleted",
    error="error",
)
AppId = Annotated[str, Path(alias="appId", description="ID (or name) of the application")]
#: What a runtime runs `mainFile` with when no `startupCommand` is given.
MAIN_FILE_RUNNERS = {"python": "python3 -u", "nodejs": "node", "node": "node", "javascript": "node"}


class _Camel(BaseModel):
    """CamposCloud's camelCase JSON over snake_case attributes."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CamposMetrics(_Camel):
    """`currentResourceMetrics`: the latest sample of the metrics collector."""

    timestamp: str | None
    online: bool
    uptime: int
    cpu_usage_percent: float
    memory_usage_bytes: int
    memory_limit_bytes: int
    network_rx_bytes: int
    network_tx_bytes: int

    @classmethod
    def of(cls, m: ResourceMetrics | None) -> "CamposMetrics | None":
        if m is None:
            return None
        return cls(
            timestamp=iso_millis(m.timestamp),
            online=m.online,
            uptime=m.uptime_seconds,
            cpu_usage_percent=m.cpu_percent,
            memory_usage_bytes=m.memory_bytes,
            memory_limit_bytes=m.memory_limit_bytes,
            network_rx_bytes=m.network_rx_bytes,
            network_tx_bytes=m.network_tx_bytes,
        )


class CamposWorkerNode(_Camel):
    id: str = Field(alias="_id")
    node_name: str


class CamposApp(_Camel):
    """The application object, field for field as the brief's example."""

    id: str = Field(alias="_id")
    current_resource_metrics: CamposMetrics | None
    container_id: str = Field(description="Empty until the engine has created the container")
    team_id: str | None
    restart_required: bool
    name: str
    user_id: str
    allocated_memory_mb: int = Field(alias="allocatedMemoryMB")
    allocated_v_cpu: int = Field(description="Whole vCPUs (a fractional limit rounded up)")
    worker_node_id: CamposWorkerNode | None
    container_image: str
    exposed_via_web: bool
    startup_command: str
    install_dependencies_cmd: str
    runtime_environment: str
    auto_restart_enabled: bool
    status: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, env: Environment) -> "CamposApp":
        node = env.runner_id
        return cls(
            id=env.id,
            current_resource_metrics=CamposMetrics.of(env.metrics),
            container_id=env.container_id or "",
            team_id=env.org_id,
            restart_required=False,
            name=display_name(env.name, env.labels, NAME_LABEL),
            user_id=env.org_id,
            allocated_memory_mb=env.memory_mb,
            allocated_v_cpu=whole_up(env.cpu),
            worker_node_id=CamposWorkerNode(id=node, node_name=node) if node else None,
            container_image=env.image,
            exposed_via_web=env.public,
            startup_command=command_text(env.command) or "",
            install_dependencies_cmd=command_text(env.install_command) or "",
            runtime_environment=env.labels.get(RUNTIME_LABEL, env.image),
            auto_restart_enabled=env.auto_restart,
            status=STATUS[env.state],
            created_at=iso_millis(env.created_at) or "",
            updated_at=iso_millis(env.updated_at) or "",
        )


class CamposAppList(BaseModel):
    applications: list[CamposApp]


class CamposLogs(BaseModel):
    logs: str


class CreateApp(_Camel):
    """The create form (or JSON body), with CamposCloud's field names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    app_name: str
    runtime_environment: str
    main_file: str | None = None
    startup_command: str | None = None
    install_dependencies_cmd: str | None = None
    memory_mb: int | None = Field(
        None, validation_alias=AliasChoices("memoryMB", "allocatedMemoryMB")
    )
    allocated_v_cpu: float | None = None
    exposed_via_web: bool = False
    auto_restart_enabled: bool = True
    team_id: str | None = Field(None, validation_alias=AliasChoices("teamId", "teamID"))


# ---- errors --------------------------------------------------------------------------


#: CamposCloud's error body: `{"message": "<text>"}` with the HTTP status.
render_error = message_body("message")


# ---- mapping -------------------------------------------------------------------------


async def _create_body(request: Request) -> CreateApp:
    """The documented multipart form, or the same fields as JSON."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            fields = await request.json()
        except ValueError as exc:
            raise InvalidRequest("request body is not valid JSON") from exc
        if not isinstance(fields, dict):
            raise InvalidRequest("the body must be a JSON object")
        return native(CreateApp, **fields)
    async with request.form() as form:
        if any(isinstance(v, UploadFile) for _, v in form.multi_items()):
            raise InvalidRequest(
                "uploading the app as a zip is not supported yet: create it without `file`, "
                "then upload files with PUT /v1/environments/{id}/files"
            )
        fields = {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    return native(CreateApp, **fields)


def _startup(body: CreateApp) -> str:
    if body.startup_command:
        return body.startup_command
    runner = MAIN_FILE_RUNNERS.get(body.runtime_environment.lower())
    if runner and body.main_file:
        return f"{runner} {shlex.quote(body.main_file)}"
    raise InvalidRequest("startupCommand is required (or mainFile with a python/nodejs runtime)")


def _to_native(body: CreateApp, images: dict[str, str]) -> EnvironmentCreate:
    labels = {RUNTIME_LABEL: body.runtime_environment}
    name = body.app_name if is_native_name(body.app_name) else None
    if name is None:
        labels[NAME_LABEL] = body.app_name
    return native(
        EnvironmentCreate,
        name=name,
        image=images.get(body.runtime_environment),
        command=_startup(body),
        install_command=body.install_dependencies_cmd or None,
        labels=labels,
        memory_mb=body.memory_mb,
        cpu=body.allocated_v_cpu,
        public=body.exposed_via_web,
        auto_restart=body.auto_restart_enabled,
        auto_stop_interval=0,
    )


async def _read_capped(chunks: AsyncIterator[bytes]) -> str:
    """The log text, at most MAX_LOG_BYTES (the newest lines are what `tail` chose)."""
    kept = bytearray()
    try:
        async for chunk in chunks:
            kept += chunk[: MAX_LOG_BYTES - len(kept)]
            if len(kept) >= MAX_LOG_BYTES:
                break
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return kept.decode(errors="replace")


# ---- routes --------------------------------------------------------------------------


@router.get("")
async def list_apps(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page: Annotated[int, Query(ge=1, le=50)] = 1,
) -> CamposAppList:
    """The organization's environments as apps, newest first, one page."""
    rows, _ = await envs.list_environments(
        session, principal, states=None, labels=None, limit=limit * page, cursor=None
    )
    return CamposAppList(applications=[CamposApp.of(r) for r in rows[(page - 1) * limit :]])


async def runtime_images(connection: HTTPConnection) -> dict[str, str]:
    """The operator's `runtimeEnvironment` → image table (`SANDBAY_DIALECTS__…`); an
    `async def`, as a plain one would run on a worker thread."""
    return get_platform(connection).settings.dialects.camposcloud_runtime_images


RuntimeImages = Annotated[dict[str, str], Depends(runtime_images)]


@router.post("/create")
async def create_app(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    environments: EnvironmentsDep,
    images: RuntimeImages,
) -> CamposApp:
    """Create an app: its install command, then its startup command, on the image of
    its runtime; it starts at once and never auto-stops."""
    body = _to_native(await _create_body(request), images)
    env = await environments.create(session, principal, body)
    return CamposApp.of(env)


@router.get("/{appId}")
async def get_app(app_id: AppId, session: SessionDep, principal: PrincipalDep) -> CamposApp:
    """One app (any environment), by id or name."""
    return CamposApp.of(await envs.read_environment(session, principal, app_id))


@router.post("/{appId}/start")
async def start_app(
    app_id: AppId, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> CamposApp:
    """Start the app (idempotent while it runs)."""
    return CamposApp.of(await lifecycle.request_start(session, principal, app_id))


@router.post("/{appId}/stop")
async def stop_app(
    app_id: AppId,
    session: SessionDep,
    principal: PrincipalDep,
    lifecycle: LifecycleDep,
) -> CamposApp:
    """Stop the app gracefully (SIGTERM, a grace period, then a kill); its files are
    kept. Idempotent: stopping a stopped app returns it."""
    env = await lifecycle.request_stop(
        session,
        principal,
        app_id,
        StopRequest(),
    )
    return CamposApp.of(env)


@router.post("/{appId}/restart")
async def restart_app(
    app_id: AppId,
    session: SessionDep,
    principal: PrincipalDep,
    lifecycle: LifecycleDep,
) -> CamposApp:
    """Stop then start the app again (a stopped app is simply started)."""
    env = await lifecycle.request_restart(
        session,
        principal,
        app_id,
        StopRequest(),
    )
    return CamposApp.of(env)


@router.delete("/{appId}/delete")
@router.delete("/{appId}")
async def delete_app(
    app_id: AppId, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> CamposApp:
    """Delete the app with its files (status `deleting`, then gone)."""
    return CamposApp.of(await lifecycle.request_delete(session, principal, app_id))


@router.get("/{appId}/logs")
async def app_logs(
    app_id: AppId,
    principal: PrincipalDep,
    inside: InsideDep,
    tail: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> CamposLogs:
    """The last `tail` lines the app printed (stdout and stderr), up to 1 MiB."""
    chunks = await logs.open_logs(
        inside,
        principal,
        app_id,
        follow=False,
        since=None,
        tail=tail,
        timestamps=False,
        stream="both",
    )
    return CamposLogs(logs=await _read_capped(chunks))


DIALECT = Dialect(
    name="camposcloud",
    prefixes=(PREFIX,),
    routers=(router,),
    renderer=render_error,
    error_shape=CAMPOSCLOUD,
)
