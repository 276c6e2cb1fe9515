"""/v1/environments/{env}/logs and …/metrics: the workload's output and its resource
use over time. Reading either is not activity."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from sandbay.api.deps import EnvRef, InsideDep, PrincipalDep, SessionDep
from sandbay.api.sse import ClosingStreamingResponse
from sandbay.domain.limits import MAX_INT64
from sandbay.domain.metrics import MetricsHistory
from sandbay.services.inside import logs, metrics
from sandbay.services.inside.logs import LogStream

router = APIRouter(prefix="/v1/environments", tags=["observability"])


@router.get(
    "/{env}/logs",
    response_class=Response,
    responses={
        200: {
            "description": "The workload's output as plain text, streamed",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def environment_logs(
    env: EnvRef,
    principal: PrincipalDep,
    inside: InsideDep,
    follow: Annotated[bool, Query(description="Keep streaming until the workload stops")] = False,
    since: Annotated[
        str | None, Query(description="Only output after this time (unix seconds or ISO 8601)")
    ] = None,
    tail: Annotated[
        int | None, Query(ge=0, le=MAX_INT64, description="Only the last N lines")
    ] = None,
    timestamps: Annotated[bool, Query(description="Prefix lines with RFC 3339 times")] = False,
    stream: Annotated[LogStream, Query(description="Which output")] = "both",
) -> Response:
    """What the environment's startup (and install) command printed, as the engine
    keeps it (the last 30 MB). Available while the container exists, also after the
    workload stopped or crashed; 409 before it was created."""
    body = await logs.open_logs(
        inside,
        principal,
        env,
        follow=follow,
        since=since,
        tail=tail,
        timestamps=timestamps,
        stream=stream,
    )
    return ClosingStreamingResponse(
        body, media_type="text/plain; charset=utf-8", headers={"X-Accel-Buffering": "no"}
    )


@router.get("/{env}/metrics")
async def environment_metrics(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    since: Annotated[
        datetime | None, Query(description="Samples after this time (default: the last hour)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsHistory:
    """Resource samples over time, oldest first (the latest is also the environment's
    `metrics`): CPU % of one CPU, memory used and limit, network and block I/O
    counters since the workload started, pids, uptime, `online`."""
    return await metrics.metrics_history(session, principal, env, since=since, limit=limit)
