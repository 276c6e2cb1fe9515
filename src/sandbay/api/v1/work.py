"""/v1/environments/{env}/work: work items on a self-hosted environment (queue, list,
get, metadata, stats, events) and the worker protocol (poll, ack, heartbeat, stop)."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status

from sandbay.api.deps import PrincipalDep, SessionDep, WorkDep
from sandbay.domain.environments import EventList
from sandbay.domain.limits import MAX_INT64
from sandbay.domain.work import (
    WorkHeartbeat,
    WorkItem,
    WorkItemCreate,
    WorkItemList,
    WorkMetadataUpdate,
    WorkState,
    WorkStats,
    WorkStopRequest,
    parse_stop_body,
)
from sandbay.services.work import items as work_items
from sandbay.services.work import protocol as work_protocol

router = APIRouter(prefix="/v1/environments/{env}/work", tags=["work"])

WorkerId = Annotated[
    str | None,
    Header(
        alias="Worker-ID",
        max_length=255,
        description="Stable worker identity: shown in queue stats and checked on ack",
    ),
]
MAX_BLOCK_MS = 30_000
MAX_RECLAIM_MS = 2**31 - 1

#: The stop body is optional and parsed by hand (any non-JSON body is a 400), so its
#: schema is given to OpenAPI here.
STOP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": WorkStopRequest.model_json_schema()}},
    }
}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_work(
    env: str, body: WorkItemCreate, session: SessionDep, principal: PrincipalDep
) -> WorkItem:
    """Queue a work item (state `queued`) for the environment's workers."""
    return await work_items.create_work(session, principal, env, body)


@router.get("")
async def list_work(
    env: str,
    session: SessionDep,
    principal: PrincipalDep,
    state: Annotated[list[WorkState] | None, Query(description="Filter by state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> WorkItemList:
    """Work items in queue order (oldest first), one page at a time."""
    items, more = await work_items.list_work(
        session, principal, env, states=state, limit=limit, after_id=cursor
    )
    return WorkItemList(
        data=items, has_more=more, next_cursor=items[-1].id if more and items else None
    )


@router.get("/poll")
async def poll_work(
    env: str,
    principal: PrincipalDep,
    work: WorkDep,
    worker_id: WorkerId = None,
    block_ms: Annotated[
        int | None, Query(ge=1, le=MAX_BLOCK_MS, description="Long poll: wait up to this")
    ] = None,
    reclaim_older_than_ms: Annotated[
        int,
        Query(ge=0, le=MAX_RECLAIM_MS, description="Redeliver items unacknowledged this long"),
    ] = work_items.DEFAULT_RECLAIM_MS,
) -> WorkItem | None:
    """Deliver the oldest available item to this worker (still `queued` until it is
    acknowledged), or JSON null when there is none within `block_ms`."""
    return await work.poll(
        principal,
        env,
        worker_id=worker_id,
        block_ms=block_ms,
        reclaim_ms=reclaim_older_than_ms,
    )


@router.get("/stats")
async def work_stats(env: str, session: SessionDep, principal: PrincipalDep) -> WorkStats:
    """Queue depth, pending deliveries, oldest queued item, workers polling, per state."""
    return await work_items.work_stats(session, principal, env)


@router.get("/{work_id}")
async def get_work(
    env: str, work_id: str, session: SessionDep, principal: PrincipalDep
) -> WorkItem:
    """One work item."""
    return await work_items.get_work(session, principal, env, work_id)


@router.patch("/{work_id}")
async def update_work_metadata(
    env: str,
    work_id: str,
    body: WorkMetadataUpdate,
    session: SessionDep,
    principal: PrincipalDep,
) -> WorkItem:
    """Merge `metadata`: string values upsert keys, null deletes them."""
    return await work_items.update_metadata(session, principal, env, work_id, body)


@router.post("/{work_id}/ack")
async def ack_work(
    env: str,
    work_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    work: WorkDep,
    worker_id: WorkerId = None,
) -> WorkItem:
    """queued → starting. Safe to repeat while starting or active; 409 when stopping
    or stopped, or when the item is another Worker-ID's."""
    return await work.ack(session, principal, env, work_id, worker_id=worker_id)


@router.post(
    "/{work_id}/heartbeat",
    responses={412: {"description": "Another worker holds the lease"}},
)
async def heartbeat_work(
    env: str,
    work_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    work: WorkDep,
    worker_id: WorkerId = None,
    expected_last_heartbeat: Annotated[
        str | None,
        Query(max_length=64, description="NO_HEARTBEAT, or the last `last_heartbeat` answered"),
    ] = None,
    desired_ttl_seconds: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Lease TTL, clamped to 10-600 s")
    ] = None,
) -> WorkHeartbeat:
    """Renew the lease; the first heartbeat moves starting → active. The answer's
    `state` is `stopping` once a graceful stop was requested: drain, then stop."""
    return await work.heartbeat(
        session,
        principal,
        env,
        work_id,
        expected_last_heartbeat=expected_last_heartbeat,
        desired_ttl_seconds=desired_ttl_seconds,
        worker_id=worker_id,
    )


@router.post("/{work_id}/stop", openapi_extra=STOP_BODY)
async def stop_work(
    env: str, work_id: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> WorkItem:
    """Body optional. force=false: queued → stopped, starting|active → stopping (the
    worker drains, then calls stop again), stopping → stopped; force=true: any live
    state → stopped. A stopped item is returned as it is."""
    body = parse_stop_body(await request.body())
    return await work_protocol.stop(session, principal, env, work_id, body)


@router.get("/{work_id}/events")
async def work_events(
    env: str,
    work_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_INT64, description="Only events after this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """The work item's audit log, oldest first: every state change and action."""
    return await work_items.work_events(session, principal, env, work_id, after=after, limit=limit)
