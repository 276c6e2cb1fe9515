"""The Qoder dialect: Qoder cloud's work-item API for self-hosted environments at
`/api/v1/cloud/environments/{environment_id}/work…`, its object shapes and its error
envelope `{"type": "error", "request_id", "error": {"type", "message"}}`. A thin
adapter over `services.work_items` and `services.work_protocol`; the stop state
table of the brief (001) is the services' own."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbay.api.deps import PrincipalDep, SessionDep, WorkDep
from sandbay.dialects.error_shapes import QODER
from sandbay.dialects.kit import Dialect
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.work import (
    WorkHeartbeat,
    WorkItem,
    WorkMetadataUpdate,
    WorkState,
    parse_stop_body,
)
from sandbay.services.work import items as work_items
from sandbay.services.work import protocol as work_protocol

PREFIX = "/api/v1/cloud/environments"
router = APIRouter(prefix=PREFIX + "/{environment_id}/work", tags=["qoder"])

WorkerId = Annotated[str | None, Header(alias="Worker-ID", max_length=255)]
MAX_PAGE = 100


# ---- shapes --------------------------------------------------------------------------


def _seconds(value: datetime | None) -> str | None:
    """Qoder's timestamps: UTC, whole seconds, `Z` (as the brief's example object)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _micros(value: datetime | None) -> str | None:
    """The latest heartbeat keeps its microseconds: workers echo it back as a lease token."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


class QoderWorkItem(BaseModel):
    """The Work item object, field for field as the brief's example."""

    id: str
    type: Literal["work"] = "work"
    environment_id: str
    data: dict[str, Any]
    state: WorkState
    created_at: str
    acknowledged_at: str | None
    started_at: str | None
    latest_heartbeat_at: str | None
    stop_requested_at: str | None
    stopped_at: str | None
    metadata: dict[str, str]

    @classmethod
    def of(cls, item: WorkItem) -> "QoderWorkItem":
        return cls(
            id=item.id,
            environment_id=item.environment_id,
            data=item.data,
            state=item.state,
            created_at=_seconds(item.created_at) or "",
            acknowledged_at=_seconds(item.acknowledged_at),
            started_at=_seconds(item.started_at),
            latest_heartbeat_at=_micros(item.latest_heartbeat_at),
            stop_requested_at=_seconds(item.stop_requested_at),
            stopped_at=_seconds(item.stopped_at),
            metadata=item.metadata,
        )


class QoderWorkList(BaseModel):
    data: list[QoderWorkItem]
    first_id: str | None
    last_id: str | None
    has_more: bool
    next_page: str | None


class QoderQueueStats(BaseModel):
    type: Literal["work_queue_stats"] = "work_queue_stats"
    depth: int
    pending: int
    oldest_queued_at: str | None
    workers_polling: int


def _out(item: WorkItem) -> QoderWorkItem:
    return QoderWorkItem.of(item)


# ---- errors --------------------------------------------------------------------------


def render_error(request: Request, status: int, error_type: str, message: str) -> JSONResponse:
    """Qoder's envelope, with the request's id. Its work endpoints document their 409s
    (ack, heartbeat) with the type `invalid_request_error`, so a conflict is rendered
    that way here."""
    if status == 409:
        error_type = "invalid_request_error"
    body = {
        "type": "error",
        "request_id": request.headers.get("x-request-id") or str(uuid.uuid4()),
        "error": {"type": error_type, "message": message},
    }
    return JSONResponse(body, status_code=status)


class RequestIdMiddleware:
    """Gives every Qoder request an `x-request-id` (the caller's, up to 128
    characters, or a new UUID), which its error envelope reads, and echoes it on the
    response, as Qoder does for request correlation. A middleware rather than a
    dependency: answers no route produced (404s, 413s, validation errors) carry it
    too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        given = dict(headers).get(b"x-request-id", b"").decode("latin-1")[:128]
        value = given or str(uuid.uuid4())
        # In place: the server-error handler, outside this middleware, reads it too.
        scope["headers"] = [
            *((k, v) for k, v in headers if k != b"x-request-id"),
            (b"x-request-id", value.encode("latin-1")),
        ]

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", value.encode())]
            await send(message)

        await self.app(scope, receive, with_header)


# ---- routes --------------------------------------------------------------------------


@router.get("")
async def list_work(
    environment_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    page: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[str | None, Query(max_length=64)] = None,
    after_id: Annotated[str | None, Query(max_length=64)] = None,
) -> QoderWorkList:
    """List work items in ascending id (queue) order; `limit` above 100 is capped."""
    if sum(v is not None for v in (page, before_id, after_id)) > 1:
        raise InvalidRequest("page, before_id and after_id cannot be used together")
    items, more = await work_items.list_work(
        session,
        principal,
        environment_id,
        limit=min(limit, MAX_PAGE),
        after_id=page or after_id,
        before_id=before_id,
    )
    data = [_out(item) for item in items]
    return QoderWorkList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=more,
        next_page=data[-1].id if more and data and before_id is None else None,
    )


@router.get("/poll")
async def poll_work(
    environment_id: str,
    principal: PrincipalDep,
    work: WorkDep,
    worker_id: WorkerId = None,
    block_ms: Annotated[int | None, Query(ge=1, le=999)] = None,
    reclaim_older_than_ms: Annotated[
        int, Query(ge=0, le=2**31 - 1)
    ] = work_items.DEFAULT_RECLAIM_MS,
) -> QoderWorkItem | None:
    """Claim one available work item; JSON null when there is none."""
    item = await work.poll(
        principal,
        environment_id,
        worker_id=worker_id,
        block_ms=block_ms,
        reclaim_ms=reclaim_older_than_ms,
    )
    return _out(item) if item is not None else None


@router.get("/stats")
async def work_stats(
    environment_id: str, session: SessionDep, principal: PrincipalDep
) -> QoderQueueStats:
    """Queue statistics of the environment."""
    stats = await work_items.work_stats(session, principal, environment_id)
    return QoderQueueStats(
        depth=stats.depth,
        pending=stats.pending,
        oldest_queued_at=_seconds(stats.oldest_queued_at),
        workers_polling=stats.workers_polling,
    )


@router.get("/{work_id}")
async def get_work(
    environment_id: str, work_id: str, session: SessionDep, principal: PrincipalDep
) -> QoderWorkItem:
    """One work item."""
    return _out(await work_items.get_work(session, principal, environment_id, work_id))


@router.post("/{work_id}")
async def update_work_metadata(
    environment_id: str,
    work_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    body: Annotated[WorkMetadataUpdate | None, Body()] = None,
) -> QoderWorkItem:
    """Merge-patch the string-only metadata (null deletes a key)."""
    patch = body or WorkMetadataUpdate()
    item = await work_items.update_metadata(session, principal, environment_id, work_id, patch)
    return _out(item)


@router.post("/{work_id}/ack")
async def ack_work(
    environment_id: str,
    work_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    work: WorkDep,
    worker_id: WorkerId = None,
) -> QoderWorkItem:
    """Acknowledge a delivered item: queued → starting."""
    item = await work.ack(session, principal, environment_id, work_id, worker_id=worker_id)
    return _out(item)


@router.post("/{work_id}/heartbeat")
async def heartbeat_work(
    environment_id: str,
    work_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    work: WorkDep,
    expected_last_heartbeat: Annotated[str | None, Query(max_length=64)] = None,
    desired_ttl_seconds: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> WorkHeartbeat:
    """Extend the worker's lease; the first heartbeat moves starting → active."""
    return await work.heartbeat(
        session,
        principal,
        environment_id,
        work_id,
        expected_last_heartbeat=expected_last_heartbeat,
        desired_ttl_seconds=desired_ttl_seconds,
        worker_id=None,
    )


@router.post("/{work_id}/stop")
async def stop_work(
    environment_id: str,
    work_id: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> QoderWorkItem:
    """Stop a work item; the body is optional (`{}` or `{"force": true}`)."""
    body = parse_stop_body(await request.body())
    item = await work_protocol.stop(session, principal, environment_id, work_id, body)
    return _out(item)


DIALECT = Dialect(
    name="qoder",
    prefixes=(PREFIX,),
    routers=(router,),
    renderer=render_error,
    error_shape=QODER,
    middleware=(RequestIdMiddleware,),
)
