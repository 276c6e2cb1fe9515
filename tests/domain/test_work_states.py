"""The work-item state table and decisions, pure: the brief's stop table row by row,
ack and heartbeat rules, lease expiry per policy, TTL clamping, the stop body."""

from datetime import UTC, datetime

import pytest

from sandbay.domain.errors import Conflict, InvalidRequest, InvalidTransition
from sandbay.domain.work import (
    NO_HEARTBEAT,
    TRANSITIONS,
    LeaseLimits,
    LeasePolicy,
    WorkState,
    check_transition,
    decide_ack,
    decide_heartbeat,
    decide_lease_expired,
    decide_stop,
    parse_expected_heartbeat,
    parse_stop_body,
)

W = WorkState


@pytest.mark.parametrize(
    ("state", "force", "result"),
    [
        (W.QUEUED, False, W.STOPPED),
        (W.STARTING, False, W.STOPPING),
        (W.ACTIVE, False, W.STOPPING),
        (W.STOPPING, False, W.STOPPED),
        (W.STOPPED, False, None),
        (W.QUEUED, True, W.STOPPED),
        (W.STARTING, True, W.STOPPED),
        (W.ACTIVE, True, W.STOPPED),
        (W.STOPPING, True, W.STOPPED),
        (W.STOPPED, True, None),
    ],
)
def test_stop_follows_the_brief_table(state: W, force: bool, result: W | None) -> None:
    assert decide_stop(state, force=force) is result
    if result is not None:
        check_transition(state, result)  # and the table allows the move


def test_stopped_is_final() -> None:
    assert TRANSITIONS[W.STOPPED] == frozenset()
    for target in W:
        with pytest.raises(InvalidTransition):
            check_transition(W.STOPPED, target)


def test_ack_moves_queued_to_starting_and_repeats_safely() -> None:
    assert decide_ack(W.QUEUED) is W.STARTING
    assert decide_ack(W.STARTING) is None and decide_ack(W.ACTIVE) is None
    for state in (W.STOPPING, W.STOPPED):
        with pytest.raises(Conflict, match=state.value):
            decide_ack(state)


def test_first_heartbeat_starts_the_item_and_later_ones_renew() -> None:
    assert decide_heartbeat(W.STARTING) is W.ACTIVE
    assert decide_heartbeat(W.ACTIVE) is None and decide_heartbeat(W.STOPPING) is None
    for state in (W.QUEUED, W.STOPPED):
        with pytest.raises(Conflict):
            decide_heartbeat(state)


@pytest.mark.parametrize(
    ("state", "policy", "attempts", "expected"),
    [
        (W.ACTIVE, LeasePolicy.REQUEUE, 1, W.QUEUED),
        (W.STARTING, LeasePolicy.REQUEUE, 2, W.QUEUED),
        (W.ACTIVE, LeasePolicy.REQUEUE, 3, W.STOPPED),
        (W.ACTIVE, LeasePolicy.STOP, 1, W.STOPPED),
        (W.STOPPING, LeasePolicy.REQUEUE, 1, W.STOPPED),
        (W.QUEUED, LeasePolicy.REQUEUE, 0, None),
        (W.STOPPED, LeasePolicy.STOP, 1, None),
    ],
)
def test_expired_lease_follows_the_items_policy(
    state: W, policy: LeasePolicy, attempts: int, expected: W | None
) -> None:
    outcome = decide_lease_expired(state, policy, attempts=attempts, max_attempts=3)
    assert (outcome[0] if outcome else None) is expected
    if outcome:
        assert "lease expired" in outcome[1]
        check_transition(state, outcome[0])


def test_lease_ttl_is_clamped() -> None:
    limits = LeaseLimits()
    assert [limits.clamp(n) for n in (1, 10, 60, 600, 10_000)] == [10, 10, 60, 600, 600]
    assert limits.clamp(None) == 60
    assert LeaseLimits(min_ttl=1, max_ttl=5, default_ttl=60).clamp(None) == 5


@pytest.mark.parametrize(
    ("raw", "force"),
    [(b"", False), (b"  ", False), (b"{}", False), (b"null", False), (b'{"force": true}', True)],
)
def test_stop_body_is_optional(raw: bytes, force: bool) -> None:
    assert parse_stop_body(raw).force is force


@pytest.mark.parametrize(
    "raw", [b"{", b"force=true", b"\xff", b"[]", b'{"force": "x"}', b'{"y": 1}']
)
def test_stop_body_that_is_not_a_json_object_of_force_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_stop_body(raw)


def test_expected_heartbeat_is_no_heartbeat_or_a_zoned_timestamp() -> None:
    assert parse_expected_heartbeat(None) is None
    assert parse_expected_heartbeat(NO_HEARTBEAT) == NO_HEARTBEAT
    assert parse_expected_heartbeat("2026-07-01T08:16:06.120394Z") == datetime(
        2026, 7, 1, 8, 16, 6, 120394, tzinfo=UTC
    )
    for bad in ("yesterday", "2026-07-01T08:16:06", ""):
        with pytest.raises(InvalidRequest):
            parse_expected_heartbeat(bad)
