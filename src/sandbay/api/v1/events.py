"""/v1/events: the organization's audit log, as pages or (`follow=true`) as a live,
resumable server-sent event stream."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from sandbay.api.deps import EventsDep, PrincipalDep, SessionDep
from sandbay.api.sse import SSEResponse, sse
from sandbay.domain.environments import Event, EventList
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.keys import Principal
from sandbay.domain.limits import MAX_INT64
from sandbay.services.events import audit
from sandbay.services.events.service import EventsService
from sandbay.services.events.stream import EventFollow

router = APIRouter(prefix="/v1/events", tags=["events"])

FOLLOW_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of events, or with `follow=true` a server-sent event stream: "
        "one `data:` per event (the Event object as JSON) with `id:` its id; a "
        "reconnecting client sends `Last-Event-ID` (or `after`) and misses nothing.",
        "content": {"text/event-stream": {"schema": Event.model_json_schema()}},
    }
}
Follow = Annotated[bool, Query(description="Stream new events as server-sent events")]
LastEventId = Annotated[
    str | None, Header(description="Resume a followed stream after this event id")
]
After = Annotated[int | None, Query(ge=0, le=MAX_INT64, description="Only events after this id")]


def resume_point(after: int | None, last_event_id: str | None) -> int | None:
    if last_event_id:
        digits = last_event_id.isascii() and last_event_id.isdigit()
        if not digits or int(last_event_id) > MAX_INT64:
            raise InvalidRequest("Last-Event-ID must be an event id")
        return int(last_event_id)
    return after


async def _encode(follow: EventFollow) -> AsyncIterator[bytes]:
    async for event in follow.events():
        yield b": idle\n\n" if event is None else sse(None, event, id=str(event.id))


async def follow_response(
    events: EventsService,
    principal: Principal,
    *,
    environment: str | None,
    after: int | None,
    last_event_id: str | None,
) -> Response:
    """The audit log as a live stream (`follow=true`), resumed after `after` or
    `Last-Event-ID`; refusals (404, 403) answer before anything streams."""
    follow = await events.follow(
        principal, environment=environment, after=resume_point(after, last_event_id)
    )
    return SSEResponse(_encode(follow))


@router.get("", response_model=EventList, responses=FOLLOW_DOC)
async def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    events: EventsDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    follow: Follow = False,
    last_event_id: LastEventId = None,
) -> Response | EventList:
    """Every recorded action and state change of the organization, oldest first. With
    `follow=true`: events from `after` (or `Last-Event-ID`; default: from now on) as
    they commit."""
    if follow:
        return await follow_response(
            events, principal, environment=None, after=after, last_event_id=last_event_id
        )
    return await audit.org_events(session, principal, after=after, limit=limit)
