"""The OpenClaw gateway inside an instance's environment, always reached through the
exec runtime (not the preview proxy): writing its configuration once the environment
first runs (a loop, so a server restart mid-way still converges), probing that it is
ready, and relaying a message to its OpenResponses endpoint on 127.0.0.1."""

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sandbay.db.models import AgentInstanceModel, ModelProviderModel
from sandbay.db.queries import agents as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.errors import RuntimeFailure, SandbayError
from sandbay.domain.exec import ExecRequest, ExecResult
from sandbay.domain.instances import (
    CONFIG_PATH,
    GATEWAY_PORT,
    SECRETS_PATH,
    TOKEN_VAR,
    GatewayModel,
    gateway_config,
    secrets_file,
)
from sandbay.domain.keys import Principal
from sandbay.kit.clock import utcnow
from sandbay.services.agents.providers import credentials
from sandbay.services.agents.relay import ModelRelay
from sandbay.services.agents.secrets import SecretBox
from sandbay.services.inside import exec as exec_service
from sandbay.services.inside.service import InsideService

log = logging.getLogger(__name__)

_WRITE_PRIVATE = 'umask 077; mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && mv "$1.tmp" "$1"'
_PROBE = f"curl -fsS -m 3 -o /dev/null http://127.0.0.1:{GATEWAY_PORT}/readyz"
#: POST stdin to the gateway with its token (read from the secrets file inside the
#: environment, so the token never leaves it); the HTTP status is the last line.
_RELAY = f"""
set -a; . {SECRETS_PATH} 2>/dev/null; set +a
timeout=$1 path=$2 session=$3
set -- -sS -m "$timeout" -w '\\n%{{http_code}}' -X POST "http://127.0.0.1:{GATEWAY_PORT}$path" \
  -H "Authorization: Bearer ${TOKEN_VAR}" -H 'Content-Type: application/json' --data-binary @-
if [ -n "$session" ]; then set -- "$@" -H "x-openclaw-session-key: $session"; fi
exec curl "$@"
"""


class GatewayUnavailable(RuntimeFailure):
    """502: the gateway did not answer (stopped, starting, or crashed)."""


@dataclass(frozen=True, slots=True)
class Relayed:
    status: int
    body: Any  # JSON, or the server-sent events text of a streamed response
    streamed: bool = False


def _system(org_id: str) -> Principal:
    return Principal.for_system(org_id, "instances")


async def _run(inside: InsideService, org_id: str, env_id: str, request: ExecRequest) -> ExecResult:
    return await exec_service.run_command(inside, _system(org_id), env_id, request)


async def gateway_ready(inside: InsideService, org_id: str, env_id: str) -> bool:
    """Whether the gateway answers its readiness probe inside the environment."""
    try:
        result = await _run(inside, org_id, env_id, ExecRequest(command=_PROBE, timeout=10))
    except SandbayError:
        return False
    return result.exit_code == 0


async def relay(
    inside: InsideService,
    org_id: str,
    env_id: str,
    body: dict[str, Any],
    *,
    session_key: str | None,
    timeout: float,
) -> Relayed:
    """POST `body` to the gateway's /v1/responses from inside the environment."""
    request = ExecRequest(
        command=[
            "/bin/sh",
            "-c",
            _RELAY,
            "sh",
            str(int(timeout)),
            "/v1/responses",
            session_key or "",
        ],
        stdin=json.dumps(body),
        timeout=timeout + 15,
    )
    result = await _run(inside, org_id, env_id, request)
    if result.exit_code != 0:  # refused, timed out, reset: the gateway did not answer
        raise GatewayUnavailable(
            "Gateway unavailable - the sandbox may have been stopped or deleted. "
            "Try restarting the instance."
        )
    text, _, code = result.stdout.rpartition("\n")
    try:
        status = int(code)
        streamed = body.get("stream") is True and status < 400
        payload = text if streamed else (json.loads(text) if text.strip() else {})
    except ValueError as exc:
        raise GatewayUnavailable("the gateway gave an answer that is not JSON") from exc
    if status >= 500:
        raise GatewayUnavailable(f"the gateway failed ({status})")
    return Relayed(status, payload, streamed=streamed)


class InstanceProvisioner:
    """Writes each new instance's gateway configuration once its environment runs
    (the provisioning loop calls `sweep`). The claim is a compare-and-set on
    `provisioned_at`, so one replica writes it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inside: InsideService,
        box: SecretBox,
        relay: ModelRelay,
    ) -> None:
        self._sessions = sessions
        self._inside = inside
        self._box = box
        self._relay = relay

    async def sweep(self) -> None:
        async with self._sessions() as session:
            pending = await queries.unprovisioned_running(session)
        for env_id in pending:
            await self.provision(env_id)

    async def _claim(self, env_id: str) -> tuple[AgentInstanceModel, ModelProviderModel] | None:
        async with self._sessions() as session:
            claimed = await queries.claim_provisioning(session, env_id, utcnow())
            instance = await session.get(AgentInstanceModel, env_id)
            provider = None
            if instance is not None:
                provider = await queries.provider_named(
                    session, instance.org_id, instance.provider_name
                )
            if not claimed or instance is None:
                return None
            if provider is None:
                instance.provisioned_at = None
                instance.error_message = f"model provider {instance.provider_name!r} is gone"
                await session.commit()
                return None
            await session.commit()
            return instance, provider

    async def provision(self, env_id: str) -> None:
        claim = await self._claim(env_id)
        if claim is None:
            return
        instance, provider = claim
        creds = credentials(self._box, provider)
        model = instance.model or creds.default_model or (creds.models[0] if creds.models else "")
        token = secrets.token_urlsafe(32)
        try:
            # The gateway calls the model relay with a credential of this instance's
            # own: the provider's key never enters the environment.
            config = gateway_config(
                GatewayModel(creds.kind, self._relay.url(), model), instance.openclaw_config
            )
            relay_key = self._relay.keys.for_instance(env_id)
            await self._write(instance.org_id, env_id, CONFIG_PATH, json.dumps(config, indent=2))
            await self._write(instance.org_id, env_id, SECRETS_PATH, secrets_file(token, relay_key))
        except SandbayError as exc:
            log.warning("provisioning instance %s failed: %s", env_id, exc.message)
            async with self._sessions() as session:
                row = await session.get(AgentInstanceModel, env_id)
                if row is not None:
                    row.provisioned_at = None
                    await session.commit()

    async def _write(self, org_id: str, env_id: str, path: str, text: str) -> None:
        request = ExecRequest(
            command=["/bin/sh", "-c", _WRITE_PRIVATE, "sh", path], stdin=text, timeout=30
        )
        result = await _run(self._inside, org_id, env_id, request)
        if result.exit_code != 0:
            raise RuntimeFailure(f"cannot write {path}: {result.stderr.strip()[:200]}")
