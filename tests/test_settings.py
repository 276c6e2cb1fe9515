"""Settings: nested sections read as SANDBAY_<SECTION>__<FIELD>, the flat names of
before the sections still work (deprecated), a nested name beats its flat one, and a
wrong value is refused with the variable named."""

import json
import logging
import os
import subprocess
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from sandbay.settings import FLAT_NAMES, Settings, explain

SANDBAY = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "sandbay")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SANDBAY_* variable of the calling shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("SANDBAY_"):
            monkeypatch.delenv(name)
    return monkeypatch


def set_variables(env: pytest.MonkeyPatch, **variables: str) -> None:
    """Set these variables for the test (over the clean environment)."""
    for name, value in variables.items():
        env.setenv(name, value)


def test_nested_names_set_their_section(clean_environment: pytest.MonkeyPatch) -> None:
    set_variables(
        clean_environment,
        SANDBAY_RECONCILER__INTERVAL="0.25",
        SANDBAY_RECONCILER__ENABLED="false",
        SANDBAY_SSH__PORT="2300",
        SANDBAY_POOLS__WARM=json.dumps([{"org": "default", "size": 2}]),
        SANDBAY_AGENT__PUBLIC_URL="https://sandbay.example",
        SANDBAY_DIALECTS__CAMPOSCLOUD_RUNTIME_IMAGES='{"nodejs": "node:22"}',
    )

    s = Settings()

    assert s.reconciler.interval == 0.25 and s.reconciler.enabled is False
    assert s.reconciler.concurrency == 32  # the rest of the section keeps its defaults
    assert s.ssh.port == 2300
    assert [(p.org, p.size) for p in s.pools.warm] == [("default", 2)]
    assert s.agent.public_url == "https://sandbay.example"
    assert s.dialects.camposcloud_runtime_images == {"nodejs": "node:22"}


def test_a_whole_section_can_be_given_as_json(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("SANDBAY_SSH", '{"port": 0, "enabled": false}')

    s = Settings()

    assert s.ssh.port == 0 and s.ssh.enabled is False and s.ssh.sweep_interval == 5.0


def _sample(field: FieldInfo) -> tuple[str, Any]:
    """A valid value other than the default, as the variable's text and as read."""
    annotation, default = field.annotation, field.get_default(call_default_factory=True)
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not NoneType)
    if annotation is bool:
        return str(not default).lower(), not default
    if annotation in (int, float):
        return str((default or 0) + 1), (default or 0) + 1
    if annotation is str:
        return "other", "other"
    if annotation is Path:
        return "/srv/sandbay/other", Path("/srv/sandbay/other")
    if get_origin(annotation) is dict:
        return '{"nodejs": "node:22"}', {"nodejs": "node:22"}
    assert get_origin(annotation) is list, annotation
    return '[{"org": "default", "size": 3}]', None  # compared by the test


@pytest.mark.parametrize("flat", sorted(FLAT_NAMES))
def test_every_flat_name_still_sets_its_field(
    clean_environment: pytest.MonkeyPatch, flat: str
) -> None:
    section, name = FLAT_NAMES[flat]
    model = Settings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    raw, expected = _sample(model.model_fields[name])
    clean_environment.setenv(f"SANDBAY_{flat.upper()}", raw)

    value = getattr(getattr(Settings(), section), name)

    if flat == "warm_pools":
        assert [(p.org, p.size) for p in value] == [("default", 3)]
    else:
        assert value == expected


def test_flat_names_in_use_read_as_before(clean_environment: pytest.MonkeyPatch) -> None:
    """The way the test servers and the README set them."""
    set_variables(
        clean_environment,
        SANDBAY_RECONCILE_INTERVAL="0.5",
        SANDBAY_POLICY_INTERVAL="0.5",
        SANDBAY_DRIFT_INTERVAL="0.5",
        SANDBAY_METRICS_INTERVAL="1",
        SANDBAY_SSH_PORT="0",
        SANDBAY_WARM_POOLS=json.dumps([{"org": "default", "size": 1}]),
        SANDBAY_RECONCILER_ENABLED="false",
        SANDBAY_WORK_MIN_TTL_SECONDS="1",
        SANDBAY_PUBLIC_URL="https://sandbay.example",
    )

    s = Settings()

    assert (s.reconciler.interval, s.reconciler.policy_interval) == (0.5, 0.5)
    assert s.reconciler.drift_interval == 0.5 and s.reconciler.enabled is False
    assert s.metrics.interval == 1 and s.ssh.port == 0 and s.work.min_ttl_seconds == 1
    assert [p.size for p in s.pools.warm] == [1]
    assert s.agent.public_url == "https://sandbay.example"


def test_top_level_names_did_not_move(clean_environment: pytest.MonkeyPatch) -> None:
    set_variables(
        clean_environment,
        SANDBAY_DATABASE_URL="postgresql://u:p@db/sandbay",
        SANDBAY_DEFAULT_STOP_TIMEOUT="3",
    )

    s = Settings()

    assert s.database_url == "postgresql://u:p@db/sandbay" and s.default_stop_timeout == 3


def test_nested_name_wins_over_its_flat_name(clean_environment: pytest.MonkeyPatch) -> None:
    set_variables(
        clean_environment,
        SANDBAY_RECONCILE_INTERVAL="0.5",
        SANDBAY_RECONCILER__INTERVAL="2",
        SANDBAY_LEASE_SECONDS="3",  # no nested twin: the flat one still counts
    )

    s = Settings()

    assert s.reconciler.interval == 2 and s.reconciler.lease_seconds == 3


def test_arguments_win_over_both_names(clean_environment: pytest.MonkeyPatch) -> None:
    """What `sandbay ssh-gateway --port` does: a partial section merged over the rest."""
    set_variables(
        clean_environment,
        SANDBAY_SSH_PORT="2300",
        SANDBAY_SSH__PORT="2400",
        SANDBAY_SSH__BIND="0.0.0.0",
    )

    s = Settings(ssh={"port": 2500}, host="0.0.0.0")

    assert s.ssh.port == 2500 and s.ssh.bind == "0.0.0.0" and s.host == "0.0.0.0"


def test_a_flat_name_in_use_is_logged_as_deprecated(
    clean_environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_environment.setenv("SANDBAY_SSH_PORT", "2300")

    with caplog.at_level(logging.WARNING, logger="sandbay.settings"):
        Settings()

    assert "SANDBAY_SSH_PORT → SANDBAY_SSH__PORT" in caplog.text
    assert "ignored" not in caplog.text


def test_a_flat_name_that_loses_is_logged_as_ignored(
    clean_environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_variables(clean_environment, SANDBAY_SSH_PORT="2300", SANDBAY_SSH__PORT="2400")

    with caplog.at_level(logging.WARNING, logger="sandbay.settings"):
        Settings()

    assert "SANDBAY_SSH_PORT → SANDBAY_SSH__PORT (ignored: its new name is set too)" in caplog.text


def test_wrong_value_is_refused_naming_both_variables(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("SANDBAY_RECONCILE_INTERVAL", "0")

    with pytest.raises(ValidationError) as refused:
        Settings()

    assert [e["loc"] for e in refused.value.errors()] == [("reconciler", "interval")]
    assert explain(refused.value) == [
        "SANDBAY_RECONCILER__INTERVAL (or SANDBAY_RECONCILE_INTERVAL): "
        "Input should be greater than 0 (got '0')"
    ]


def test_wrong_value_inside_a_list_names_the_item(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("SANDBAY_POOLS__WARM", '[{"org": "default", "size": "many"}]')

    with pytest.raises(ValidationError) as refused:
        Settings()

    [line] = explain(refused.value)
    assert line.startswith("SANDBAY_POOLS__WARM (or SANDBAY_WARM_POOLS)[0][size]: ")


def test_misspelt_nested_name_is_refused(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("SANDBAY_SSH__PROT", "2300")

    with pytest.raises(ValidationError) as refused:
        Settings()

    assert explain(refused.value) == [
        "SANDBAY_SSH__PROT: Extra inputs are not permitted (got '2300')"
    ]


def test_flat_json_that_does_not_parse_is_refused_by_name(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("SANDBAY_WARM_POOLS", "[{org: default}]")

    with pytest.raises(SettingsError, match="SANDBAY_WARM_POOLS is not valid JSON"):
        Settings()


def test_server_command_with_a_wrong_value_exits_naming_it(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SANDBAY_DATA_DIR": str(tmp_path),
        "SANDBAY_METRICS__RETENTION_HOURS": "-1",
    }
    result = subprocess.run(
        [SANDBAY, "reconciler"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 2, result.stderr
    assert "SANDBAY_METRICS__RETENTION_HOURS (or SANDBAY_METRICS_RETENTION_HOURS)" in result.stderr
    assert "greater than 0" in result.stderr and "Traceback" not in result.stderr


def test_every_setting_says_what_it_is() -> None:
    sections = [Settings] + [
        f.annotation
        for f in Settings.model_fields.values()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    ]
    missing = [
        f"{model.__name__}.{name}"
        for model in sections
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert missing == []
