"""The lifecycle table and the decisions built on it (pure, no I/O)."""

import itertools
from functools import partial
from typing import Any

import pytest

from sandbay.domain.errors import InvalidTransition
from sandbay.domain.states import (
    TRANSIENT,
    TRANSITIONS,
    Action,
    Decision,
    DesiredState,
    EnvState,
    Observed,
    Step,
    after_action,
    can_transition,
    check_transition,
    decide_archive,
    decide_delete,
    decide_pause,
    decide_restart,
    decide_resume,
    decide_start,
    decide_stop,
    plan,
    plan_drift,
)

S, D = EnvState, DesiredState


def test_every_state_has_a_row_and_deleted_is_terminal() -> None:
    assert set(TRANSITIONS) == set(EnvState)
    assert TRANSITIONS[S.DELETED] == frozenset()


def test_delete_and_error_are_reachable_from_every_live_state() -> None:
    # Daytona users hit undeletable sandboxes: every state but deleted can be deleted.
    for state in EnvState:
        if state in (S.DELETED, S.DELETING):
            continue
        assert can_transition(state, S.DELETING), state
    for state in set(EnvState) - {S.DELETED, S.ERROR}:
        assert can_transition(state, S.ERROR), state


def test_invalid_transition_names_the_current_state() -> None:
    with pytest.raises(InvalidTransition, match="stopped"):
        check_transition(S.STOPPED, S.RUNNING)


@pytest.mark.parametrize("state", sorted(TRANSIENT))
def test_plan_gives_engine_work_for_every_transient_state(state: EnvState) -> None:
    desired = D.DELETED if state is S.DELETING else D.RUNNING
    step = plan(state, desired)
    assert step is not None and step.action is not None


@pytest.mark.parametrize(
    ("state", "desired", "expected"),
    [
        (S.RUNNING, D.RUNNING, None),
        (S.STOPPED, D.STOPPED, None),
        (S.ERROR, D.RUNNING, None),
        (S.DELETED, D.DELETED, None),
        (S.STOPPED, D.RUNNING, Step(move_to=S.STARTING)),
        (S.RUNNING, D.STOPPED, Step(move_to=S.STOPPING)),
        (S.RUNNING, D.DELETED, Step(move_to=S.DELETING)),
        (S.ERROR, D.DELETED, Step(move_to=S.DELETING)),
        (S.CREATING, D.RUNNING, Step(action=Action.CREATE)),
        (S.STOPPING, D.RUNNING, Step(action=Action.STOP)),
        (S.ARCHIVED, D.RUNNING, Step(move_to=S.RESTORING)),
    ],
)
def test_plan(state: EnvState, desired: DesiredState, expected: Step | None) -> None:
    assert plan(state, desired) == expected


def test_plan_moves_are_all_allowed_by_the_table() -> None:
    for state, desired in itertools.product(EnvState, DesiredState):
        step = plan(state, desired)
        if step is not None and step.move_to is not None:
            assert can_transition(state, step.move_to), (state, desired, step)


def test_stop_of_stopped_is_a_noop_and_of_running_moves_to_stopping() -> None:
    assert decide_stop(S.STOPPED, D.STOPPED, force=False).noop
    decision = decide_stop(S.RUNNING, D.RUNNING, force=False)
    assert (decision.desired, decision.move_to, decision.noop) == (D.STOPPED, S.STOPPING, False)


def test_force_stop_while_stopping_is_not_a_noop() -> None:
    assert decide_stop(S.STOPPING, D.STOPPED, force=False).noop
    assert not decide_stop(S.STOPPING, D.STOPPED, force=True).noop


def test_start_of_running_is_a_noop_and_start_while_stopping_only_changes_intent() -> None:
    assert decide_start(S.RUNNING, D.RUNNING).noop
    decision = decide_start(S.STOPPING, D.STOPPED)
    assert (decision.desired, decision.move_to) == (D.RUNNING, None)


@pytest.mark.parametrize("state", [S.DELETING, S.DELETED])
def test_start_stop_restart_of_a_deleting_environment_conflict(state: EnvState) -> None:
    for decide in (
        lambda: decide_start(state, D.DELETED),
        lambda: decide_stop(state, D.DELETED, force=True),
        lambda: decide_restart(state),
    ):
        with pytest.raises(InvalidTransition):
            decide()


def test_restart_of_running_stops_with_running_desired() -> None:
    decision = decide_restart(S.RUNNING)
    assert (decision.desired, decision.move_to) == (D.RUNNING, S.STOPPING)


def test_delete_is_idempotent_while_deleting_and_refused_when_deleted() -> None:
    assert decide_delete(S.DELETING).noop
    assert decide_delete(S.ERROR).move_to is S.DELETING
    with pytest.raises(InvalidTransition):
        decide_delete(S.DELETED)


def _decisions(state: EnvState, desired: DesiredState) -> list[Decision]:
    out = []
    for decide in (
        partial(decide_start, state, desired),
        partial(decide_stop, state, desired, force=False),
        partial(decide_stop, state, desired, force=True),
        partial(decide_restart, state),
        partial(decide_delete, state),
        partial(decide_archive, state, desired),
        partial(decide_pause, state, desired),
        partial(decide_resume, state, desired),
    ):
        try:
            out.append(decide())
        except InvalidTransition:
            continue
    return out


def test_every_decision_move_is_allowed_by_the_table() -> None:
    for state, desired in itertools.product(EnvState, DesiredState):
        for decision in _decisions(state, desired):
            if decision.move_to is not None:
                assert can_transition(state, decision.move_to), (state, desired, decision)


@pytest.mark.parametrize(("code", "to"), [(0, S.STOPPED), (3, S.ERROR), (137, S.ERROR)])
def test_a_workload_that_ends_on_its_own_stays_ended(code: int, to: EnvState) -> None:
    exited = Observed(present=True, running=False, exit_code=code)
    step = plan_drift(S.RUNNING, exited, auto_restart=False)
    assert step == Step(move_to=to, reason=f"workload exited with code {code}", desired=D.STOPPED)
    # Recorded together, the move and the intent converge: nothing starts it again.
    assert plan(to, D.STOPPED) is None


def test_with_auto_restart_an_exit_restarts_and_keeps_the_intent() -> None:
    exited = Observed(present=True, running=False, exit_code=1)
    step = plan_drift(S.RUNNING, exited, auto_restart=True)
    assert step is not None and step.move_to is S.STARTING and step.restart
    assert step.desired is None


def _converge(state: EnvState, desired: DesiredState) -> EnvState:
    """Follow `plan` as the reconciler would, every engine action succeeding."""
    for _ in range(12):
        step = plan(state, desired)
        if step is None:
            return state
        if step.move_to is not None:
            state = step.move_to
        else:
            assert step.action is not None
            state = after_action(step.action, desired)
    raise AssertionError(f"no convergence from {state} toward {desired}")


@pytest.mark.parametrize(
    ("state", "decide", "settled"),
    [
        (S.RUNNING, decide_pause, S.PAUSED),
        (S.STARTING, decide_pause, S.PAUSED),  # paused once it runs
        (S.PAUSED, decide_resume, S.RUNNING),
        (S.PAUSING, decide_resume, S.RUNNING),  # resumed once frozen
        (S.PAUSED, decide_start, S.RUNNING),  # a start resumes
        (S.PAUSED, partial(decide_stop, force=True), S.STOPPED),
        (S.PAUSED, decide_archive, S.ARCHIVED),
    ],
)
def test_pause_and_resume_converge(state: EnvState, decide: Any, settled: EnvState) -> None:
    desired = D.PAUSED if state in (S.PAUSED, S.PAUSING) else D.RUNNING
    decision = decide(state, desired)
    moved = decision.move_to or state
    assert _converge(moved, decision.desired) is settled


@pytest.mark.parametrize("state", [S.STOPPED, S.ARCHIVED, S.ERROR, S.STOPPING, S.DELETING])
def test_only_a_running_environment_pauses(state: EnvState) -> None:
    with pytest.raises(InvalidTransition, match="only a running"):
        decide_pause(state, D.STOPPED)


def test_a_stopped_environment_is_started_not_resumed() -> None:
    with pytest.raises(InvalidTransition, match="only a paused"):
        decide_resume(S.STOPPED, D.STOPPED)


def test_pause_and_resume_are_idempotent() -> None:
    assert decide_pause(S.PAUSED, D.PAUSED).noop
    assert decide_resume(S.RUNNING, D.RUNNING).noop


def test_drift_of_a_paused_environment() -> None:
    thawed = Observed(present=True, running=True, paused=False)
    assert plan_drift(S.PAUSED, thawed, auto_restart=False) == Step(
        move_to=S.PAUSING, reason="container was not frozen while paused"
    )
    frozen = Observed(present=True, running=True, paused=True)
    assert plan_drift(S.PAUSED, frozen, auto_restart=False) is None
    step = plan_drift(S.RUNNING, frozen, auto_restart=False)
    assert step is not None and step.move_to is S.RESUMING
    gone = plan_drift(S.PAUSED, Observed(present=False), auto_restart=False)
    assert gone is not None and gone.move_to is S.STARTING and "memory is lost" in gone.reason
    exited = plan_drift(S.PAUSED, Observed(present=True, exit_code=0), auto_restart=False)
    assert exited is not None and exited.move_to is S.STOPPED
