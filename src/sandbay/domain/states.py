"""The environment lifecycle: states, desired states, the allowed-transition table,
and `plan`, which says what the reconciler must do next. Pure: no I/O, no clock."""

from dataclasses import dataclass
from enum import StrEnum

from sandbay.domain.errors import InvalidTransition


class EnvState(StrEnum):
    CREATING = "creating"
    STARTING = "starting"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ARCHIVING = "archiving"
    ARCHIVED = "archived"
    RESTORING = "restoring"
    DELETING = "deleting"
    DELETED = "deleted"
    ERROR = "error"


class DesiredState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ARCHIVED = "archived"
    DELETED = "deleted"


S = EnvState

#: States in which the reconciler has engine work in flight or pending.
TRANSIENT: frozenset[EnvState] = frozenset(
    {
        S.CREATING, S.STARTING, S.PAUSING, S.RESUMING, S.STOPPING, S.ARCHIVING, S.RESTORING,
        S.DELETING,
    }
)  # fmt: skip

#: States whose workload still holds its memory (its processes exist, frozen or not).
HOLDS_MEMORY: frozenset[EnvState] = frozenset({S.RUNNING, S.PAUSING, S.PAUSED, S.RESUMING})

#: Every allowed move. Anything else is a 409 with the current state in the message.
TRANSITIONS: dict[EnvState, frozenset[EnvState]] = {
    S.CREATING: frozenset({S.STARTING, S.STOPPED, S.STOPPING, S.DELETING, S.ERROR}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.DELETING, S.ERROR, S.STOPPED}),
    S.RUNNING: frozenset(
        {S.STOPPING, S.DELETING, S.ERROR, S.STOPPED, S.STARTING, S.PAUSING, S.RESUMING}
    ),
    S.PAUSING: frozenset({S.PAUSED, S.RUNNING, S.STOPPING, S.DELETING, S.ERROR}),
    S.PAUSED: frozenset({S.RESUMING, S.PAUSING, S.STARTING, S.STOPPING, S.DELETING, S.ERROR}),
    S.RESUMING: frozenset({S.RUNNING, S.STOPPING, S.DELETING, S.ERROR}),
    S.STOPPING: frozenset({S.STOPPED, S.DELETING, S.ERROR}),
    S.STOPPED: frozenset({S.STARTING, S.STOPPING, S.ARCHIVING, S.DELETING, S.ERROR}),
    S.ARCHIVING: frozenset({S.ARCHIVED, S.STOPPED, S.DELETING, S.ERROR}),
    S.ARCHIVED: frozenset({S.RESTORING, S.DELETING, S.ERROR}),
    S.RESTORING: frozenset({S.STARTING, S.STOPPED, S.DELETING, S.ERROR}),
    S.DELETING: frozenset({S.DELETED, S.ERROR}),
    S.DELETED: frozenset(),
    S.ERROR: frozenset({S.STARTING, S.STOPPING, S.STOPPED, S.DELETING, S.RESTORING}),
}


def can_transition(current: EnvState, target: EnvState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: EnvState, target: EnvState) -> None:
    """Raise the 409 the API answers when the table refuses a move."""
    if not can_transition(current, target):
        raise InvalidTransition(f"environment is {current.value}; it cannot move to {target.value}")


class Action(StrEnum):
    """Engine work the reconciler performs for a transient state."""

    CREATE = "create"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    ARCHIVE = "archive"
    RESTORE = "restore"
    DELETE = "delete"


ACTION_FOR: dict[EnvState, Action] = {
    S.CREATING: Action.CREATE,
    S.STARTING: Action.START,
    S.PAUSING: Action.PAUSE,
    S.RESUMING: Action.RESUME,
    S.STOPPING: Action.STOP,
    S.ARCHIVING: Action.ARCHIVE,
    S.RESTORING: Action.RESTORE,
    S.DELETING: Action.DELETE,
}


@dataclass(frozen=True, slots=True)
class Step:
    """One reconciler step: either engine work, or a database-only move toward
    the desired state (after which the next step is engine work)."""

    action: Action | None = None
    move_to: EnvState | None = None
    reason: str = "desired state"
    restart: bool = False  # an auto_restart of a workload that exited
    #: The intent this step records with its move: a workload that ended on its own
    #: (without auto_restart) is meant to stay ended, not to be started again.
    desired: DesiredState | None = None


#: Exit code of a workload the kernel's OOM killer ended (128 + SIGKILL).
OOM_EXIT_CODE = 137


@dataclass(frozen=True, slots=True)
class Observed:
    """What the engine says about an environment's container."""

    present: bool
    running: bool = False
    paused: bool = False
    exit_code: int | None = None
    oom_killed: bool = False


def needs_observation(state: EnvState, desired: DesiredState) -> bool:
    """Stable states whose truth is in the engine: the reconciler looks before planning."""
    return (
        (state is S.RUNNING and desired is DesiredState.RUNNING)
        or (state is S.PAUSED and desired is DesiredState.PAUSED)
        or (state is S.STOPPED and desired is not DesiredState.DELETED)
    )


def plan_drift(state: EnvState, observed: Observed, *, auto_restart: bool) -> Step | None:
    """Repair a stable state that the engine contradicts (level-triggered)."""
    if state is S.PAUSED and observed.present and observed.running and not observed.paused:
        return Step(move_to=S.PAUSING, reason="container was not frozen while paused")
    if state is S.RUNNING and observed.paused:
        return Step(move_to=S.RESUMING, reason="container was frozen while running")
    if state in (S.RUNNING, S.PAUSED):
        if not observed.present:
            lost = "; its memory is lost" if state is S.PAUSED else ""
            return Step(move_to=S.STARTING, reason=f"container vanished{lost}; recreating it")
        if not observed.running:
            code = observed.exit_code if observed.exit_code is not None else -1
            why = f"workload exited with code {code}"
            # The engine's flag stays set after any kill in the container: only a
            # workload that died of SIGKILL was the one the OOM killer chose.
            if observed.oom_killed and code == OOM_EXIT_CODE:
                why = f"killed: out of memory ({why})"
            if auto_restart:
                return Step(move_to=S.STARTING, reason=f"{why}; restarting", restart=True)
            return Step(
                move_to=S.STOPPED if code == 0 else S.ERROR,
                reason=why,
                desired=DesiredState.STOPPED,
            )
    if state is S.STOPPED and observed.running:
        return Step(move_to=S.STOPPING, reason="container was running while stopped")
    return None


def restart_delay(streak: int) -> float:
    """Seconds before an auto-restart: immediate at first, doubling while the
    workload keeps crashing soon after starting, capped at a minute."""
    return 0.0 if streak <= 0 else min(60.0, 0.5 * 2 ** min(streak, 10))


#: Seconds a transient state may last before the hang detector calls it stuck
#: (stopping also gets the stop's own grace period).
DEADLINES: dict[EnvState, float] = {
    S.CREATING: 300.0,
    S.STARTING: 120.0,
    S.PAUSING: 60.0,
    S.RESUMING: 60.0,
    S.STOPPING: 60.0,
    S.ARCHIVING: 1800.0,
    S.RESTORING: 1800.0,
    S.DELETING: 300.0,
}


def deadline_seconds(state: EnvState, *, stop_timeout: float, scale: float = 1.0) -> float | None:
    base = DEADLINES.get(state)
    if base is None:
        return None
    return base * scale + (stop_timeout if state is S.STOPPING else 0.0)


def plan(state: EnvState, desired: DesiredState) -> Step | None:
    """What to do next to bring `state` toward `desired`; None when converged.

    Level-triggered: it looks only at where the environment is and where it
    should be, never at how it got there, so it is safe to call after a crash.
    """
    if state is S.DELETED:
        return None
    if desired is DesiredState.DELETED and state is not S.DELETING:
        return Step(move_to=S.DELETING)
    if state in ACTION_FOR:
        return Step(action=ACTION_FOR[state])
    if state in (S.RUNNING, S.PAUSED) and desired in (
        DesiredState.STOPPED,
        DesiredState.ARCHIVED,
    ):
        return Step(move_to=S.STOPPING)
    if state is S.RUNNING and desired is DesiredState.PAUSED:
        return Step(move_to=S.PAUSING)
    if state is S.PAUSED and desired is DesiredState.RUNNING:
        return Step(move_to=S.RESUMING)
    if state is S.STOPPED:
        if desired is DesiredState.RUNNING:
            return Step(move_to=S.STARTING)
        if desired is DesiredState.ARCHIVED:
            return Step(move_to=S.ARCHIVING)
    if state is S.ARCHIVED and desired is DesiredState.RUNNING:
        return Step(move_to=S.RESTORING)
    # RUNNING/running, PAUSED/paused, STOPPED/stopped, ARCHIVED/archived|stopped and
    # ERROR wait for a user.
    return None


def after_action(action: Action, desired: DesiredState) -> EnvState:
    """The state an environment reaches when `action` succeeds."""
    match action:
        case Action.CREATE:
            return S.STARTING if desired is DesiredState.RUNNING else S.STOPPED
        case Action.START | Action.RESUME:
            return S.RUNNING
        case Action.PAUSE:
            return S.PAUSED
        case Action.STOP:
            return S.STOPPED
        case Action.ARCHIVE:
            return S.ARCHIVED
        case Action.RESTORE:
            return S.STARTING if desired is DesiredState.RUNNING else S.STOPPED
        case Action.DELETE:
            return S.DELETED


# ---- what each user request means, per current state --------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a lifecycle request: the desired state to record, the state to
    move to now (None: stay), and whether the request was a no-op."""

    desired: DesiredState
    move_to: EnvState | None
    noop: bool = False


def decide_start(state: EnvState, desired: DesiredState) -> Decision:
    """Start: idempotent while running or on its way; restores an archived one."""
    if state in (S.DELETING, S.DELETED):
        raise InvalidTransition(f"environment is {state.value}; it cannot be started")
    if state in (S.RUNNING, S.STARTING, S.CREATING, S.RESTORING, S.RESUMING, S.PAUSING):
        return Decision(DesiredState.RUNNING, None, noop=desired is DesiredState.RUNNING)
    if state is S.PAUSED:
        return Decision(DesiredState.RUNNING, S.RESUMING)
    if state is S.ARCHIVED:
        return Decision(DesiredState.RUNNING, S.RESTORING)
    if state in (S.STOPPING, S.ARCHIVING):
        # The stop (or archive) finishes first; the reconciler then starts it again.
        return Decision(DesiredState.RUNNING, None)
    return Decision(DesiredState.RUNNING, S.STARTING)  # stopped, error


def decide_stop(state: EnvState, desired: DesiredState, *, force: bool) -> Decision:
    """Stop: idempotent when stopped (or archived); allowed from every live state."""
    if state in (S.DELETING, S.DELETED):
        raise InvalidTransition(f"environment is {state.value}; it cannot be stopped")
    if state in (S.STOPPED, S.ARCHIVED):
        keep = desired if desired is DesiredState.ARCHIVED else DesiredState.STOPPED
        return Decision(keep, None, noop=desired is keep)
    if state is S.STOPPING:
        return Decision(
            DesiredState.STOPPED, None, noop=desired is DesiredState.STOPPED and not force
        )
    if state in (S.ARCHIVING, S.RESTORING, S.PAUSING, S.RESUMING):
        return Decision(DesiredState.STOPPED, None)
    # creating, starting, running, paused, error
    return Decision(DesiredState.STOPPED, S.STOPPING)


def decide_restart(state: EnvState) -> Decision:
    """Restart: stop then start again; a stopped environment is simply started."""
    if state in (S.DELETING, S.DELETED):
        raise InvalidTransition(f"environment is {state.value}; it cannot be restarted")
    if state in (S.RUNNING, S.STARTING, S.PAUSED):
        return Decision(DesiredState.RUNNING, S.STOPPING)
    if state in (S.PAUSING, S.RESUMING):
        raise InvalidTransition(f"environment is {state.value}; restart it once that is done")
    return decide_start(state, DesiredState.STOPPED)


def decide_archive(state: EnvState, desired: DesiredState) -> Decision:
    """Archive: a running environment is stopped first; archived is a no-op."""
    if state is S.ARCHIVED or (state is S.ARCHIVING and desired is DesiredState.ARCHIVED):
        return Decision(DesiredState.ARCHIVED, None, noop=True)
    if state is S.STOPPED:
        return Decision(DesiredState.ARCHIVED, S.ARCHIVING)
    if state in (S.RUNNING, S.STARTING, S.CREATING, S.PAUSED):
        return Decision(DesiredState.ARCHIVED, S.STOPPING)
    if state in (S.STOPPING, S.PAUSING, S.RESUMING):
        return Decision(DesiredState.ARCHIVED, None)
    raise InvalidTransition(f"environment is {state.value}; it cannot be archived")


def decide_delete(state: EnvState) -> Decision:
    """Delete: allowed from every state but deleted; repeated while deleting is a no-op."""
    if state is S.DELETED:
        raise InvalidTransition("environment is deleted")
    if state is S.DELETING:
        return Decision(DesiredState.DELETED, None, noop=True)
    return Decision(DesiredState.DELETED, S.DELETING)


def decide_pause(state: EnvState, desired: DesiredState) -> Decision:
    """Pause: freeze a running environment in place (memory kept, no CPU); idempotent
    while paused or pausing; one on its way up is paused once it runs."""
    if state in (S.PAUSED, S.PAUSING):
        return Decision(DesiredState.PAUSED, None, noop=desired is DesiredState.PAUSED)
    if state is S.RUNNING:
        return Decision(DesiredState.PAUSED, S.PAUSING)
    if state in (S.CREATING, S.STARTING, S.RESTORING, S.RESUMING):
        return Decision(DesiredState.PAUSED, None)
    raise InvalidTransition(
        f"environment is {state.value}; only a running environment can be paused"
    )


def decide_resume(state: EnvState, desired: DesiredState) -> Decision:
    """Resume: thaw a paused environment; idempotent while running or resuming. Only
    what is paused (or on its way) resumes: a stopped one is started, not resumed."""
    if state in (S.PAUSED, S.PAUSING, S.RESUMING, S.RUNNING):
        return decide_start(state, desired)
    if state in (S.CREATING, S.STARTING, S.RESTORING) and desired is DesiredState.PAUSED:
        return Decision(DesiredState.RUNNING, None)
    raise InvalidTransition(f"environment is {state.value}; only a paused one can be resumed")
