"""The audit log, and `transition`: the one door through which an environment's
state changes (checks the table, sets the state, records the event)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel, EventModel, UsageModel
from sandbay.db.session import after_commit
from sandbay.domain.environments import Event
from sandbay.domain.quotas import split_by_month
from sandbay.domain.states import EnvState, check_transition
from sandbay.services.bus import EventBus


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        from_state=env.state,
        to_state=env.state,
        reason=reason,
        data=data,
    )


def transition(
    session: AsyncSession,
    env: EnvironmentModel,
    to: EnvState,
    *,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> EventModel:
    """Move `env` to `to` if the table allows it (409 otherwise) and record it.
    `version` is bumped by the flush, which is a compare-and-set in the database."""
    current = EnvState(env.state)
    check_transition(current, to)
    now = utcnow()
    if current is EnvState.RUNNING and env.started_at is not None:
        _accrue_running_time(session, env, env.started_at, now)
    env.state = to.value
    env.updated_at = now
    env.state_changed_at = now
    if to is EnvState.RUNNING:
        env.started_at = now
        env.last_activity_at = now  # a fresh run starts its idle clock
        env.error_message = None
    elif to is EnvState.STOPPED:
        env.stopped_at = now
    elif to is EnvState.DELETED:
        env.deleted_at = now
    elif to is EnvState.ARCHIVED:
        env.archived_at = now
    elif to is EnvState.ERROR:
        env.error_message = reason
    elif to is EnvState.STARTING:
        env.error_message = None  # the last exit code stays: restart policies report it
    # Anything moving the environment wants the reconciler to look at it.
    env.next_attempt_at = now
    return record_event(
        session,
        org_id=env.org_id,
        environment_id=env.id,
        type="environment.state_changed",
        actor=actor,
        from_state=current.value,
        to_state=to.value,
        reason=reason,
        data=data,
    )


def _accrue_running_time(
    session: AsyncSession, env: EnvironmentModel, started: datetime, ended: datetime
) -> None:
    """Leaving `running` closes a run: it goes into the usage ledger (split by month)."""
    if ended <= started:
        return
    env.running_seconds = (env.running_seconds or 0.0) + (ended - started).total_seconds()
    for period, start, end in split_by_month(started, ended):
        session.add(
            UsageModel(
                org_id=env.org_id,
                environment_id=env.id,
                period=period,
                started_at=start,
                ended_at=end,
                seconds=(end - start).total_seconds(),
                cpu=env.cpu,
                memory_mb=env.memory_mb,
            )
        )
