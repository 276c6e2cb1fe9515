"""The CloudCLI dialect: CloudCLI's environments API at `/api/v1/environments…`
(list, get, create, delete, start, stop) with `X-API-KEY`, its Environment,
CreateEnvironmentRequest and Error shapes. A thin adapter over the native services.

Known from CloudCLI's public documentation: the paths, `X-API-KEY`, the stop answer
`{"message": "Environment stopped successfully", "status": "stopped"}` with 400 and
404, a list answered as `{"environments": [...]}` filtered by `?status=`, the
statuses `starting`, `running`, `stopping`, `stopped`, `error`, environments with
`id`, `name`, `subdomain`, `status`, `access_url`, a create body of `name` (1-50
characters), `subdomain` (3-30 of `a-z0-9-`), `github_url`, `github_token`, and that
a running environment must be stopped before it is deleted. Designed here in that
spirit (documented in the README): the error body `{"error": "<message>"}`, the
start and delete answers, the timestamps of the Environment object.

`GET /environments/{id}/ssh` and `/api/v1/agent…` are not here: they come with the
SSH gateway and the agents."""

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sandbay.api.deps import (
    AccessDep,
    EnvironmentsDep,
    LifecycleDep,
    PrincipalDep,
    SessionDep,
    request_origin,
)
from sandbay.dialects.error_shapes import CLOUDCLI
from sandbay.dialects.kit import (
    Dialect,
    coarse_states,
    display_name,
    iso_millis,
    message_body,
    native,
)
from sandbay.domain.environments import (
    Environment,
    EnvironmentCreate,
    StopRequest,
    hostname_for,
)
from sandbay.domain.errors import InvalidRequest, WrongState
from sandbay.domain.states import EnvState
from sandbay.services.access import ssh as ssh_credentials
from sandbay.services.environments import records as envs

PREFIX = "/api/v1/environments"
#: An environment's id (or name) in a path: never empty (an empty one would make the
#: URL another route's, e.g. `POST /api/v1/environments//start`).
EnvId = Annotated[str, Path(min_length=1, description="environment id or name")]
router = APIRouter(prefix=PREFIX, tags=["cloudcli"])

NAME_LABEL = "cloudcli/name"
CloudStatus = Literal["starting", "running", "stopping", "stopped", "error", "deleting"]
S = EnvState
STATUS: dict[EnvState, CloudStatus] = coarse_states(
    starting="starting",
    running="running",
    stopping="stopping",
    stopped="stopped",
    deleting="deleting",
    deleted="deleting",
    error="error",
)
STARTABLE = frozenset({S.STOPPED, S.ARCHIVED, S.ERROR})
STOPPABLE = frozenset({S.RUNNING})
DELETABLE = frozenset({S.STOPPED, S.ARCHIVED, S.ERROR})
MAX_LIST = 1000


class CloudCliEnvironment(BaseModel):
    """CloudCLI's Environment object."""

    id: str
    name: str
    subdomain: str
    status: CloudStatus
    access_url: str | None = Field(description="HTTPS URL of the environment (preview proxy)")
    github_url: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, env: Environment) -> "CloudCliEnvironment":
        return cls(
            id=env.id,
            name=display_name(env.name, env.labels, NAME_LABEL),
            subdomain=hostname_for(env.name).lower(),
            status=STATUS[env.state],
            access_url=None,
            github_url=None,
            created_at=iso_millis(env.created_at) or "",
            updated_at=iso_millis(env.updated_at) or "",
        )


class CloudCliEnvironmentList(BaseModel):
    environments: list[CloudCliEnvironment]


class CreateEnvironmentRequest(BaseModel):
    """CloudCLI's CreateEnvironmentRequest."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    subdomain: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,28}[a-z0-9]$")]
    github_url: str | None = None
    github_token: str | None = None


class CloudCliStatusMessage(BaseModel):
    message: str
    status: CloudStatus


class CloudCliMessage(BaseModel):
    message: str


# ---- errors --------------------------------------------------------------------------


#: CloudCLI's Error: `{"error": "<message>"}` with the HTTP status.
render_error = message_body("error")


def _refused(exc: WrongState, action: str) -> InvalidRequest:
    """CloudCLI answers a request the environment's status does not allow with 400."""
    current = STATUS[EnvState(exc.state)]
    return InvalidRequest(f"Environment cannot be {action} while it is {current}")


# ---- routes --------------------------------------------------------------------------


@router.get("")
async def list_environments(
    session: SessionDep,
    principal: PrincipalDep,
    status_filter: Annotated[CloudStatus | None, Query(alias="status")] = None,
) -> CloudCliEnvironmentList:
    """The organization's environments, newest first (up to 1000)."""
    states = [s for s, shown in STATUS.items() if shown == status_filter] or None
    rows, _ = await envs.list_environments(
        session, principal, states=states, labels=None, limit=MAX_LIST, cursor=None
    )
    return CloudCliEnvironmentList(environments=[CloudCliEnvironment.of(r) for r in rows])


@router.get("/{id}")
async def get_environment(
    id: EnvId, session: SessionDep, principal: PrincipalDep
) -> CloudCliEnvironment:
    """One environment, by id (or name)."""
    return CloudCliEnvironment.of(await envs.read_environment(session, principal, id))


class SSHCredentials(BaseModel):
    """CloudCLI's SSHCredentials: a short-lived login to the environment's shell
    (the SSH gateway refuses it while the environment is stopped)."""

    host: str
    port: int
    username: str
    password: str | None
    private_key: str | None
    expires_at: str
    ssh_command: str


@router.get("/{id}/ssh")
async def get_ssh_credentials(
    id: EnvId, request: Request, session: SessionDep, principal: PrincipalDep, access: AccessDep
) -> SSHCredentials:
    """Get SSH credentials: a password-like token and a one-time private key, valid
    until `expires_at` (the server's credential TTL)."""
    cred = await ssh_credentials.issue_credential(
        session,
        principal,
        id,
        endpoint=access.ssh_endpoint(request_origin(request)),
        ttl=access.ssh_ttl,
        expires_in=None,
    )
    return SSHCredentials(
        host=cred.host,
        port=cred.port,
        username=cred.username,
        password=cred.password,
        private_key=cred.private_key,
        expires_at=iso_millis(cred.expires_at),
        ssh_command=cred.ssh_command,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_environment(
    body: CreateEnvironmentRequest,
    session: SessionDep,
    principal: PrincipalDep,
    environments: EnvironmentsDep,
) -> CloudCliEnvironment:
    """Create an environment named by its subdomain; it starts at once."""
    if body.github_url or body.github_token:
        raise InvalidRequest("github_url is not supported yet: clone inside the environment")
    labels = {NAME_LABEL: body.name} if body.name != body.subdomain else {}
    request = native(EnvironmentCreate, name=body.subdomain, labels=labels)
    env = await environments.create(session, principal, request)
    return CloudCliEnvironment.of(env)


@router.delete("/{id}")
async def delete_environment(
    id: EnvId, principal: PrincipalDep, lifecycle: LifecycleDep
) -> CloudCliMessage | CloudCliStatusMessage:
    """Delete a stopped environment with its workspace (400 while it runs). Answers
    once it is gone (a GET is then 404); if that takes longer than a bounded wait,
    the answer says `status: deleting` instead."""
    try:
        env = await lifecycle.delete_settled(principal, id, only_from=DELETABLE)
    except WrongState as exc:
        raise _refused(exc, "deleted (stop it first)") from exc
    if env.state is S.DELETED:
        return CloudCliMessage(message="Environment deleted successfully")
    shown = STATUS[env.state]
    return CloudCliStatusMessage(message=f"Environment is {shown}", status=shown)


@router.post("/{id}/start")
async def start_environment(
    id: EnvId, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> CloudCliStatusMessage:
    """Start a stopped environment on the host that keeps its workspace."""
    try:
        env = await lifecycle.request_start(session, principal, id, only_from=STARTABLE)
    except WrongState as exc:
        raise _refused(exc, "started") from exc
    return CloudCliStatusMessage(message="Environment starting", status=STATUS[env.state])


@router.post("/{id}/stop")
async def stop_environment(
    id: EnvId, principal: PrincipalDep, lifecycle: LifecycleDep
) -> CloudCliStatusMessage:
    """Gracefully stop a running environment: its processes get SIGTERM and a grace
    period, /workspace is kept, SSH and HTTPS access end, no CPU, memory or running
    hours are used while stopped, and the next start is on the same host. Answers
    once it is stopped (so a start right after is accepted), at most the grace
    period plus a margin later; if it is not stopped by then, the answer says so
    (`status: stopping`) and a later start waits for the stop to finish first."""
    try:
        env = await lifecycle.stop_settled(principal, id, StopRequest(), only_from=STOPPABLE)
    except WrongState as exc:
        raise _refused(exc, "stopped") from exc
    shown = STATUS[env.state]
    if shown == "stopped":
        return CloudCliStatusMessage(message="Environment stopped successfully", status=shown)
    return CloudCliStatusMessage(message=f"Environment is {shown}", status=shown)


DIALECT = Dialect(
    name="cloudcli",
    prefixes=(PREFIX,),
    routers=(router,),
    renderer=render_error,
    error_shape=CLOUDCLI,
)
