"""Recording events: each is appended in the caller's transaction and published on
the bus once it commits."""

from typing import Any

from sandbay.db.models import EnvironmentModel, EventModel
from sandbay.db.notify import announce
from sandbay.db.session import AsyncSession, after_commit
from sandbay.domain.environments import Event
from sandbay.kit.clock import utcnow
from sandbay.services.events.bus import EventBus


def record_event(
    session: AsyncSession,
    *,
    org_id: str,
    type: str,
    actor: str,
    environment_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> EventModel:
    """Append an event; it is published on the bus once the transaction commits."""
    event = EventModel(
        org_id=org_id,
        environment_id=environment_id,
        type=type,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        data=data or {},
        created_at=utcnow(),
    )
    session.add(event)
    announce(session, event)
    bus: EventBus | None = session.sync_session.info.get("bus")
    if bus is not None:
        after_commit(session, lambda: bus.publish(Event.model_validate(event)))
    return event


def record_environment_event(
    session: AsyncSession,
    env: EnvironmentModel,
    type: str,
    *,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> EventModel:
    env.updated_at = utcnow()
    return record_event(
        session,
        org_id=env.org_id,
        environment_id=env.id,
        type=type,
        actor=actor,
        from_state=env.state.value,  # the log's columns are strings (work states too)
        to_state=env.state.value,
        reason=reason,
        data=data,
    )
