"""`transition`: the one door through which an environment's state changes (checks
the table, sets the state and its timestamp, closes a run into the usage ledger,
records the event), and `set_desired`, the one through which its desired state
does."""

from datetime import datetime
from typing import Any

from sandbay.db.models import EnvironmentModel, EventModel, UsageModel
from sandbay.db.session import AsyncSession
from sandbay.domain.quotas import split_by_month
from sandbay.domain.states import DesiredState, EnvState, check_transition
from sandbay.kit.clock import stamp, utcnow
from sandbay.services.events.record import record_event

#: The timestamps each state sets when it is entered.
STAMPS: dict[EnvState, tuple[str, ...]] = {
    # A fresh run starts its idle clock.
    EnvState.RUNNING: ("started_at", "last_activity_at"),
    EnvState.STOPPED: ("stopped_at",),
    EnvState.DELETED: ("deleted_at",),
    EnvState.ARCHIVED: ("archived_at",),
}


def set_desired(env: EnvironmentModel, desired: DesiredState) -> None:
    """Record what the environment should become; the reconciler looks at it next."""
    env.desired_state = desired
    env.next_attempt_at = utcnow()


def transition(
    session: AsyncSession,
    env: EnvironmentModel,
    to: EnvState,
    *,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    desired: DesiredState | None = None,
) -> EventModel:
    """Move `env` to `to` if the table allows it (409 otherwise) and record it, with
    a new `desired` state if one is given. `version` is bumped by the flush, which
    is a compare-and-set in the database."""
    current = env.state
    check_transition(current, to)
    if desired is not None:
        set_desired(env, desired)
    now = utcnow()
    if current is EnvState.RUNNING and env.started_at is not None:
        _accrue_running_time(session, env, env.started_at, now)
    env.state = to
    env.updated_at = now
    env.state_changed_at = now
    stamp(env, STAMPS, to, now)
    if to is EnvState.ERROR:
        env.error_message = reason
    elif to in (EnvState.RUNNING, EnvState.STARTING):
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
