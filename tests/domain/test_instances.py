"""OpenClaw instances: status from the environment's state, the gateway's config."""

import pytest

from sandbay.domain.agents import ProviderKind
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.instances import (
    GatewayModel,
    check_overrides,
    gateway_config,
    gateway_url,
    instance_status,
    secrets_file,
)
from sandbay.domain.states import EnvState


@pytest.mark.parametrize(
    ("state", "provisioned", "ready", "status"),
    [
        (EnvState.CREATING, False, False, "provisioning"),
        (EnvState.RUNNING, False, False, "provisioning"),
        (EnvState.RUNNING, True, False, "provisioning"),
        (EnvState.RUNNING, True, True, "running"),
        (EnvState.STOPPING, True, False, "stopping"),
        (EnvState.STOPPED, True, False, "stopped"),
        (EnvState.ARCHIVED, True, False, "stopped"),
        (EnvState.ERROR, True, False, "error"),
        (EnvState.DELETED, True, False, "terminated"),
    ],
)
def test_instance_status_follows_the_environment(
    state: EnvState, provisioned: bool, ready: bool, status: str
) -> None:
    assert instance_status(state, provisioned=provisioned, gateway_ready=ready) == status


def test_gateway_config_reads_the_key_from_its_environment_and_applies_overrides() -> None:
    model = GatewayModel(ProviderKind.ANTHROPIC, "https://api.anthropic.com", "claude-x")
    config = gateway_config(model, {"agents.defaults.thinking": "low", "telemetry": {"x": 1}})
    provider = config["models"]["providers"]["sandbay"]
    assert provider["api"] == "anthropic-messages"
    assert provider["apiKey"] == "${SANDBAY_MODEL_API_KEY}"
    assert config["agents"]["defaults"]["thinking"] == "low"
    assert config["agents"]["defaults"]["model"]["primary"] == "sandbay/claude-x"
    assert config["telemetry"] == {"enabled": False, "x": 1}
    assert config["gateway"]["auth"] == {"mode": "token"} and config["gateway"]["port"] == 18789
    assert "key" not in str(config).replace("apiKey", "")


def test_overrides_cannot_touch_the_gateway_or_the_providers() -> None:
    for bad in ({"gateway.auth.mode": "none"}, {"gateway": {}}, {"models": {"providers": {}}}):
        with pytest.raises(InvalidRequest):
            check_overrides(bad)
    assert check_overrides({"agents.defaults.thinking": "low"}) is not None


def test_secrets_file_quotes_values_and_gateway_url_has_the_proxy_path_form() -> None:
    assert (
        secrets_file("t'k", "a b")
        == "OPENCLAW_GATEWAY_TOKEN='t'\"'\"'k'\nSANDBAY_MODEL_API_KEY='a b'\n"
    )
    assert gateway_url("http://h:1/", "env_1") == "http://h:1/preview/env_1/18789/"
