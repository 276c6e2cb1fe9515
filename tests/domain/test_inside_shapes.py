"""Pure rules of the inside-an-environment API: path normalisation and CPU rates."""

from datetime import UTC, datetime, timedelta

import pytest

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.exec import ExecRequest, command_argv
from sandbay.domain.files import normalize_path
from sandbay.domain.metrics import ContainerSample, cpu_percent, to_metrics


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/workspace/a.txt", "/workspace/a.txt"),
        ("a.txt", "/workspace/a.txt"),
        ("src//pkg/./m.py", "/workspace/src/pkg/m.py"),
        ("/", "/"),
        ("/etc/", "/etc"),
    ],
)
def test_paths_are_absolute_and_normalised(given: str, expected: str) -> None:
    assert normalize_path(given) == expected


@pytest.mark.parametrize(
    "given", ["../../etc/passwd", "/workspace/../etc", "a/..", "..", "", "a\x00b", "x" * 5000]
)
def test_climbing_or_malformed_paths_are_refused(given: str) -> None:
    with pytest.raises(InvalidRequest):
        normalize_path(given)


def test_a_shell_string_runs_under_sh_and_argv_as_given() -> None:
    assert command_argv("echo $HOME") == ["/bin/sh", "-c", "echo $HOME"]
    assert command_argv(["ls", "-l"]) == ["ls", "-l"]
    with pytest.raises(ValueError, match="argv"):
        ExecRequest.model_validate({"command": []})
    with pytest.raises(ValueError, match="absolute"):
        ExecRequest.model_validate({"command": "true", "cwd": "relative"})


def _sample(cpu_ns: int, mono: float, started: datetime, at: datetime) -> ContainerSample:
    return ContainerSample(
        environment_id="env_x",
        taken_at=at,
        monotonic=mono,
        started_at=started,
        cpu_ns=cpu_ns,
        memory_bytes=1,
        memory_limit_bytes=2,
        network_rx_bytes=3,
        network_tx_bytes=4,
        block_read_bytes=5,
        block_write_bytes=6,
        pids=7,
    )


def test_cpu_percent_is_the_rate_between_samples_in_percent_of_one_cpu() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = _sample(1_000_000_000, 100.0, start, start + timedelta(seconds=4))
    second = _sample(2_000_000_000, 102.0, start, start + timedelta(seconds=6))
    assert cpu_percent(None, first) == 25.0  # average since start: 1 s of CPU in 4 s
    assert cpu_percent(first, second) == 50.0  # 1 s of CPU in 2 s
    metrics = to_metrics(second, first)
    assert metrics.uptime_seconds == 6 and metrics.online and metrics.pids == 7
    # A restarted container's counter goes down: fall back to the average.
    restarted = _sample(10, 103.0, start + timedelta(seconds=5), start + timedelta(seconds=6))
    assert cpu_percent(second, restarted) == 0.0
