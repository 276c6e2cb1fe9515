"""OpenClaw instances (the Chowder brief): an environment whose workload is the
OpenClaw gateway. Pure: the status an instance shows for its environment's state,
the gateway's configuration, and the launcher the environment runs."""

import copy
import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbay.domain.agents import ProviderKind
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.states import EnvState

GATEWAY_PORT = 18789
STATE_DIR = "/root/.openclaw"
CONFIG_PATH = f"{STATE_DIR}/openclaw.json"
#: Secrets of the gateway process (its token, its model relay credential, never the
#: provider's key): mode 0600, read by the launcher into the gateway's environment only.
SECRETS_PATH = f"{STATE_DIR}/sandbay.env"
MODEL_KEY_VAR = "SANDBAY_MODEL_API_KEY"
#: Plugins a headless sandbox cannot use (desktop, devices, voice, a browser) or does
#: not need (providers other than the instance's own): the gateway boots faster
#: without them. `openclaw_config` may set `plugins.deny` differently.
DENIED_PLUGINS = [
    "browser", "canvas", "cua-computer", "device-pair", "file-transfer", "geolocation",
    "linux-node", "talk-voice", "github", "xai", "ollama",
]  # fmt: skip
TOKEN_VAR = "OPENCLAW_GATEWAY_TOKEN"  # noqa: S105 (a variable name)

#: The workload: wait until sandbay has written the configuration (after the first
#: start), then keep the gateway running (a crash restarts it, with back-off, in the
#: same sandbox); stopping the environment stops the gateway gracefully.
LAUNCHER = f"""
until [ -s {SECRETS_PATH} ]; do sleep 0.5; done
set -a; . {SECRETS_PATH}; set +a
cd /workspace
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
delay=1
while :; do
  started=$(date +%s)
  openclaw gateway run --port {GATEWAY_PORT} --bind lan &
  pid=$!
  wait "$pid"
  [ $(( $(date +%s) - started )) -gt 60 ] && delay=1
  sleep "$delay"
  [ "$delay" -lt 30 ] && delay=$((delay * 2))
done
"""
#: Settings of the gateway process that are not secret: no LAN discovery, no channels,
#: no update checks or telemetry from a sandbox.
GATEWAY_ENV = {
    "HOME": "/root",
    "OPENCLAW_DISABLE_BONJOUR": "1",
    "OPENCLAW_NO_RESPAWN": "1",
    "OPENCLAW_SKIP_CHANNELS": "1",
    "OPENCLAW_NO_AUTO_UPDATE": "1",
    "DO_NOT_TRACK": "1",
}

PROVISIONING_STATES = frozenset(
    {EnvState.CREATING, EnvState.STARTING, EnvState.RESTORING, EnvState.RUNNING}
)
STOPPED_STATES = frozenset({EnvState.STOPPED, EnvState.ARCHIVING, EnvState.ARCHIVED})


def instance_status(state: EnvState, *, provisioned: bool, gateway_ready: bool) -> str:
    """Chowder's status: provisioning, running, stopping, stopped, error or terminated.
    `stopping` while the gateway shuts down (its grace period): never `stopped`
    before it is."""
    if state in (EnvState.DELETING, EnvState.DELETED):
        return "terminated"
    if state is EnvState.ERROR:
        return "error"
    if state is EnvState.STOPPING:
        return "stopping"
    if state in STOPPED_STATES:
        return "stopped"
    if state is EnvState.RUNNING and provisioned and gateway_ready:
        return "running"
    return "provisioning"


def _set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        merged = copy.deepcopy(node[parts[-1]])
        for key, item in value.items():
            _set_path(merged, key, item)
        node[parts[-1]] = merged
    else:
        node[parts[-1]] = value


def check_overrides(overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenClaw settings a user may change; the gateway's own (port, bind, auth) are ours."""
    if overrides is None:
        return None
    if len(json.dumps(overrides)) > 64 * 1024:
        raise InvalidRequest("openclaw_config is larger than 64 KiB")
    for key, value in overrides.items():
        if key == "gateway" or key.startswith("gateway.") or not key:
            raise InvalidRequest("openclaw_config cannot change gateway.* (sandbay runs it)")
        if key == "models" and isinstance(value, dict) and "providers" in value:
            raise InvalidRequest("openclaw_config cannot change models.providers")
    return overrides


@dataclass(frozen=True, slots=True)
class GatewayModel:
    kind: ProviderKind
    base_url: str
    model: str


def gateway_config(model: GatewayModel, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """openclaw.json: token auth (the token comes from the environment), the OpenAI
    compatible HTTP endpoints on, no update checks, and one model provider (the model
    relay) whose credential is read from the gateway process's environment."""
    api = "anthropic-messages" if model.kind is ProviderKind.ANTHROPIC else "openai-completions"
    entry = {
        "id": model.model,
        "name": model.model,
        "input": ["text"],
        "contextWindow": 128000,
        "maxTokens": 8192,
    }
    config: dict[str, Any] = {
        "gateway": {
            "mode": "local",
            "port": GATEWAY_PORT,
            "bind": "lan",
            "auth": {"mode": "token"},
            "http": {
                "endpoints": {"responses": {"enabled": True}, "chatCompletions": {"enabled": True}}
            },
        },
        "update": {"checkOnStart": False},
        "telemetry": {"enabled": False},
        "plugins": {"deny": list(DENIED_PLUGINS)},
        "models": {
            "mode": "replace",
            "providers": {
                "sandbay": {
                    "baseUrl": model.base_url,
                    "apiKey": "${" + MODEL_KEY_VAR + "}",
                    "api": api,
                    "models": [entry],
                }
            },
        },
        "agents": {
            "defaults": {"model": {"primary": f"sandbay/{model.model}"}, "workspace": "/workspace"}
        },
    }
    for key, value in (overrides or {}).items():
        _set_path(config, key, value)
    return config


def secrets_file(token: str, api_key: str) -> str:
    return f"{TOKEN_VAR}={shlex.quote(token)}\n{MODEL_KEY_VAR}={shlex.quote(api_key)}\n"


def timestamp(value: datetime) -> str:
    """Chowder's timestamps: ISO 8601 with microseconds and +00:00."""
    return value.isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class InstanceView:
    """An instance as every surface sees it (the Chowder dialect renders it)."""

    id: str
    organization_id: str
    name: str
    status: str
    model_provider: str
    sandbox_id: str | None
    gateway_url: str | None
    openclaw_version: str
    openclaw_config: dict[str, Any] | None
    region: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime


def gateway_url(base_url: str, environment_id: str) -> str:
    """The gateway through the preview proxy's path form: {base}/preview/{env}/{port}/."""
    return f"{base_url.rstrip('/')}/preview/{environment_id}/{GATEWAY_PORT}/"
