"""`transition`: the one door through which an environment's state changes (checks
the table, sets the state and its timestamp, closes a run into the usage ledger,
records the event)."""

from datetime import datetime
from typing import Any

from sandbay.db.models import EnvironmentModel, EventModel, UsageModel
from sandbay.db.session import AsyncSession
from sandbay.domain.quotas import split_by_month
from sandbay.domain.states import EnvState, check_transition
from sandbay.kit.clock import utcnow
from sandbay.services.events.record import record_event


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
    current = env.state
    check_transition(current, to)
    now = utcnow()
    if current is EnvState.RUNNING and env.started_at is not None:
        _accrue_running_time(session, env, env.started_at, now)
    env.state = to
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
