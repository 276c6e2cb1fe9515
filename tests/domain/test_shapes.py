"""Validation of what clients send, and ids."""

import pytest
from pydantic import ValidationError

from sandbay.domain import ids
from sandbay.domain.environments import (
    EnvironmentCreate,
    StopRequest,
    hostname_for,
    workload_argv,
)


def test_ids_are_prefixed_and_time_ordered() -> None:
    made = [ids.new_id(ids.ENVIRONMENT) for _ in range(50)]
    assert all(ids.has_prefix(i, "env") and len(i) == 36 for i in made)
    assert made == sorted(made)
    assert not ids.has_prefix("work_" + "0" * 32, "env")


@pytest.mark.parametrize(
    "body",
    [
        {"memory_mb": -1},
        {"cpu": 0},
        {"name": "has space"},
        {"name": "env_" + "a" * 32},
        {"labels": {"sandbay.environment": "x"}},
        {"labels": {"k": "v" * 1_000_000}},
        {"env": {"1BAD": "x"}},
        {"network_allow_list": ["not-a-cidr"]},
        {"command": []},
        {"unknown_field": 1},
        {"auto_delete_interval": -2},
    ],
)
def test_bad_create_bodies_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EnvironmentCreate.model_validate(body)


def test_cidrs_are_normalised() -> None:
    body = EnvironmentCreate.model_validate({"network_allow_list": ["10.1.2.3/8", " ::1 "]})
    assert body.network_allow_list == ["10.0.0.0/8", "::1/128"]


def test_stop_signal_names_are_normalised() -> None:
    assert StopRequest.model_validate({"signal": "term"}).signal == "SIGTERM"
    with pytest.raises(ValidationError):
        StopRequest.model_validate({"signal": "SIGNOPE"})


def test_workload_argv() -> None:
    assert workload_argv(None, None) == []
    assert workload_argv("echo hi", None) == ["/bin/sh", "-c", "echo hi"]
    assert workload_argv(["python3", "-V"], None) == ["python3", "-V"]
    assert workload_argv(["python3", "app.py"], "pip install -r r.txt") == [
        "/bin/sh",
        "-c",
        "pip install -r r.txt\nexec python3 app.py",
    ]


def test_hostname_for_makes_a_valid_label() -> None:
    assert hostname_for("my_env.v2") == "my-env-v2"
    assert hostname_for("___") == "sandbox"
