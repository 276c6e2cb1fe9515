"""/v1/environments: create, list, get, update, delete, lifecycle, wait, events."""

from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import Response

from sandbay.api.deps import (
    AccessDep,
    EnvironmentsDep,
    EnvRef,
    EventsDep,
    IfMatchDep,
    LifecycleDep,
    PrincipalDep,
    SessionDep,
    etag,
)
from sandbay.api.v1.events import (
    FOLLOW_DOC,
    After,
    Follow,
    LastEventId,
    follow_response,
)
from sandbay.domain.environments import (
    Environment,
    EnvironmentCreate,
    EnvironmentList,
    EnvironmentUpdate,
    EventList,
    MoveRequest,
    StopRequest,
    WaitState,
)
from sandbay.domain.states import EnvState
from sandbay.services.events import audit

router = APIRouter(prefix="/v1/environments", tags=["environments"])

OptionalStop = Annotated[StopRequest | None, Body()]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_environment(
    body: EnvironmentCreate,
    session: SessionDep,
    principal: PrincipalDep,
    environments: EnvironmentsDep,
    response: Response,
) -> Environment:
    """Create an environment; it is started at once (poll or `wait` for `running`).
    With an `Idempotency-Key` header, a retry with the same key and body within 24 h
    gets the first answer again (`Idempotent-Replayed: true`) and creates nothing;
    the same key with another body is 422."""
    created = await environments.create(session, principal, body)
    response.headers["ETag"] = etag(created.version)
    return created


@router.get("")
async def list_environments(
    principal: PrincipalDep,
    environments: EnvironmentsDep,
    state: Annotated[list[EnvState] | None, Query(description="Filter by state")] = None,
    label: Annotated[list[str] | None, Query(description="Filter by label, as key=value")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> EnvironmentList:
    """List environments, newest first, one page at a time."""
    return await environments.page(
        principal, states=state, labels=label, limit=limit, cursor=cursor
    )


@router.get("/{env}")
async def get_environment(
    env: EnvRef, principal: PrincipalDep, environments: EnvironmentsDep, response: Response
) -> Environment:
    """One environment, by id or name; its `version` is the `ETag` (for `If-Match`)."""
    found = await environments.read(principal, env)
    response.headers["ETag"] = etag(found.version)
    return found


@router.patch("/{env}", responses={412: {"description": "`If-Match` names another version"}})
async def update_environment(
    env: EnvRef,
    body: EnvironmentUpdate,
    principal: PrincipalDep,
    access: AccessDep,
    if_versions: IfMatchDep,
    response: Response,
) -> Environment:
    """Change name, labels, auto-stop/archive/delete intervals, restart policy,
    `public`, or the network policy. A network change is in force on a running
    environment when this answers (no restart); 502 if it could not be enforced
    (it is saved, and enforced again at the next start or sweep). With `If-Match`
    (the `ETag` of a GET), only at that version: 412 if it changed since."""
    updated = await access.update_environment(principal, env, body, if_versions=if_versions)
    response.headers["ETag"] = etag(updated.version)
    return updated


@router.delete("/{env}", status_code=status.HTTP_202_ACCEPTED)
async def delete_environment(
    env: EnvRef, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> Environment:
    """Delete: the container and the workspace volume are removed (state `deleting`,
    then `deleted`). Works from every state."""
    return await lifecycle.request_delete(session, principal, env)


@router.post("/{env}/start")
async def start_environment(
    env: EnvRef, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> Environment:
    """Start a stopped environment on its own runner; idempotent when running."""
    return await lifecycle.request_start(session, principal, env)


@router.post("/{env}/stop")
async def stop_environment(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    lifecycle: LifecycleDep,
    body: OptionalStop = None,
) -> Environment:
    """Stop: `signal` (default SIGTERM), a grace period of `timeout` seconds (default
    10), then a kill; `force` kills at once. /workspace and the root filesystem are
    kept. Idempotent: stopping a stopped environment returns it."""
    return await lifecycle.request_stop(session, principal, env, body or StopRequest())


@router.post("/{env}/restart")
async def restart_environment(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    lifecycle: LifecycleDep,
    body: OptionalStop = None,
) -> Environment:
    """Stop (as `stop` does, with the same options) then start again."""
    return await lifecycle.request_restart(session, principal, env, body or StopRequest())


@router.post("/{env}/archive")
async def archive_environment(
    env: EnvRef, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> Environment:
    """Archive: stop if running, then move /workspace and the root filesystem to the
    archive store and free the container and volume. `start` restores it."""
    return await lifecycle.request_archive(session, principal, env)


@router.post("/{env}/move")
async def move_environment(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    environments: EnvironmentsDep,
    body: MoveRequest | None = None,
) -> Environment:
    """Move an archived environment to another runner (a Swarm node): `runner_id` (id
    or hostname), or the best other one. Its next `start` restores it there, root
    filesystem and /workspace byte for byte. Archive it first; 409 otherwise."""
    return await environments.move(session, principal, env, (body or MoveRequest()).runner_id)


@router.post("/{env}/pause")
async def pause_environment(
    env: EnvRef, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> Environment:
    """Pause: freeze the workload in place (`pausing`, then `paused`). Its memory is
    kept (`holds_memory`), it gets no CPU, exec and previews wait for `resume`.
    Idempotent while paused."""
    return await lifecycle.request_pause(session, principal, env)


@router.post("/{env}/resume")
async def resume_environment(
    env: EnvRef, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> Environment:
    """Resume a paused environment where it was (`resuming`, then `running`);
    idempotent while running. `start` resumes too."""
    return await lifecycle.request_resume(session, principal, env)


@router.post("/{env}/keepalive")
async def keep_alive(
    env: EnvRef, session: SessionDep, principal: PrincipalDep, lifecycle: LifecycleDep
) -> Environment:
    """Count as activity now: pushes back the idle auto-stop (`auto_stop_at`), not
    the hard `max_lifetime`."""
    return await lifecycle.keep_alive(session, principal, env)


@router.get(
    "/{env}/wait",
    responses={408: {"description": "The state was not reached in time"}},
)
async def wait_environment(
    env: EnvRef,
    principal: PrincipalDep,
    lifecycle: LifecycleDep,
    state: Annotated[WaitState, Query(description="State to wait for")],
    timeout: Annotated[float, Query(gt=0, le=600, description="Seconds")] = 60,
) -> Environment:
    """Block until the environment is in `state` (200) or `timeout` passes (408).
    Answers 409 if it went to `error` and 404 if it was deleted meanwhile."""
    return await lifecycle.wait_for_state(principal, env, EnvState(state), timeout)


@router.get("/{env}/events", response_model=EventList, responses=FOLLOW_DOC)
async def environment_events(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    events: EventsDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    follow: Follow = False,
    last_event_id: LastEventId = None,
) -> Response | EventList:
    """The environment's audit log, oldest first: every request and state change. With
    `follow=true`: its events from `after` (or `Last-Event-ID`; default: from now
    on) as they commit; the stream ends after the environment is deleted."""
    if follow:
        return await follow_response(
            events, principal, environment=env, after=after, last_event_id=last_event_id
        )
    return await audit.environment_events(session, principal, env, after=after, limit=limit)
