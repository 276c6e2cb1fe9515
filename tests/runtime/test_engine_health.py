"""How the reconciler tells an engine's shutdown from a workload's own exit
(runtime/docker/health.py): pure bookkeeping over the engine's outages as this
process saw them, so it is checked on crafted inspect results."""

from datetime import UTC, datetime, timedelta

from sandbay.domain.runtime import ContainerInfo, ContainerStatus
from sandbay.runtime.docker.health import EngineHealth


def _exited(code: int, seconds_ago: float, *, oom: bool = False) -> ContainerInfo:
    finished = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return ContainerInfo(
        container_id="c", environment_id="e", org_id="o", status=ContainerStatus.EXITED,
        exit_code=code, oom_killed=oom, finished_at=finished.isoformat(),
    )  # fmt: skip


def _went_down_now() -> EngineHealth:
    health = EngineHealth()
    health.reached()
    health.unreachable()  # the outage begins after the last call that reached it: now
    return health


def test_a_shutdown_exit_just_before_the_engine_stopped_answering_is_the_engines() -> None:
    """A Swarm node's engine stops its containers, then stops answering."""
    health = _went_down_now()
    assert health.stopped_by_engine(_exited(143, 3))
    assert health.stopped_by_engine(_exited(137, 6))
    assert not health.undecided(_exited(143, 3))


def test_an_exit_long_before_or_with_another_code_is_the_workloads() -> None:
    health = _went_down_now()
    assert not health.stopped_by_engine(_exited(143, 40))
    assert not health.stopped_by_engine(_exited(1, 3))
    assert not health.stopped_by_engine(_exited(137, 3, oom=True))


def test_a_fresh_shutdown_exit_with_the_engine_still_up_waits_for_a_verdict() -> None:
    health = EngineHealth()
    assert health.undecided(_exited(143, 2))  # the engine may be on its way down
    assert not health.stopped_by_engine(_exited(143, 2))
    assert not health.undecided(_exited(143, 40))  # long enough: the workload's own
    assert not health.undecided(_exited(3, 2))  # not how a shutdown ends a workload
