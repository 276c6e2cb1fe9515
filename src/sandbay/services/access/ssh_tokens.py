"""SSH access by token (Daytona's): the token is the user name (`ssh <token>@host`),
with no key and no password prompt. A token is an SSH credential without a key:
only its SHA-256 is stored; issuing one revokes the environment's earlier tokens,
and the gateway closes the sessions of a revoked one as it does for credentials."""

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbay.db.cas import with_cas_retry
from sandbay.db.models import EnvironmentModel, SshCredentialModel
from sandbay.db.queries import access as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain import ids
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict, InvalidRequest
from sandbay.domain.keys import Permission, Principal, hash_key
from sandbay.kit.clock import utcnow
from sandbay.services.access.ssh import SSH, Login, SshEndpoint, login_of, usable
from sandbay.services.environments.records import get_environment
from sandbay.services.events.record import record_environment_event
from sandbay.services.tenancy.auth import require

#: Letters and digits only (Daytona's: nothing a shell or an ssh client would trip on).
_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 32
DEFAULT_MINUTES = 60
MAX_MINUTES = 7 * 24 * 60


def looks_like_token(username: str) -> bool:
    return len(username) == TOKEN_LENGTH and all(c in _ALPHABET for c in username)


@dataclass(frozen=True, slots=True)
class SshToken:
    id: str
    environment_id: str
    token: str
    created_at: datetime
    expires_at: datetime
    ssh_command: str


def _revoke(
    session: AsyncSession, env: EnvironmentModel, cred: SshCredentialModel, actor: str
) -> None:
    cred.revoked_at = utcnow()
    record_environment_event(
        session,
        env,
        "environment.ssh_credential_revoked",
        actor=actor,
        data={"credential_id": cred.id},
    )


async def issue_token(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    *,
    endpoint: SshEndpoint,
    expires_in_minutes: int | None,
) -> SshToken:
    """A new token for the environment (the earlier ones stop working)."""
    minutes = DEFAULT_MINUTES if expires_in_minutes is None else expires_in_minutes
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidRequest(f"expiresInMinutes must be between 1 and {MAX_MINUTES}")
    token = "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))

    async def attempt() -> SshCredentialModel:
        env = await get_environment(session, principal, id_or_name, SSH)
        if env.kind is EnvironmentKind.SELF_HOSTED:
            raise Conflict("a self-hosted environment runs on its own worker: no SSH here")
        for cred in await queries.credentials_of(session, env.id):
            if cred.key_fingerprint is None and cred.revoked_at is None:
                _revoke(session, env, cred, principal.actor)
        now = utcnow()
        model = SshCredentialModel(
            id=ids.new_id(ids.SSH_CREDENTIAL),
            org_id=env.org_id,
            environment_id=env.id,
            password_hash=hash_key(token),
            key_fingerprint=None,
            created_by=principal.actor,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
        session.add(model)
        record_environment_event(
            session,
            env,
            "environment.ssh_credential_issued",
            actor=principal.actor,
            data={"credential_id": model.id, "expires_at": model.expires_at.isoformat()},
        )
        await session.flush()
        return model

    model = await with_cas_retry(session, attempt)
    return SshToken(
        model.id,
        model.environment_id,
        token,
        model.created_at,
        model.expires_at,
        endpoint.command(token),
    )


async def revoke_tokens(
    session: AsyncSession, principal: Principal, id_or_name: str, token: str | None
) -> None:
    """Revoke one token of the environment, or with none every SSH access it has (a
    token that is not the environment's is left alone)."""
    env = await get_environment(session, principal, id_or_name, SSH)
    wanted = hash_key(token) if token else None
    for cred in await queries.credentials_of(session, env.id):
        if cred.revoked_at is None and (wanted is None or cred.password_hash == wanted):
            _revoke(session, env, cred, principal.actor)
    await session.flush()


async def validate_token(session: AsyncSession, principal: Principal, token: str) -> str | None:
    """The environment the token opens now (of the caller's organization), if any."""
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    cred = await queries.credential_by_password(session, hash_key(token))
    if cred is None or cred.key_fingerprint is not None or cred.org_id != org_id:
        return None
    if not usable(cred, cred.environment_id):
        return None
    return cred.environment_id if principal.may_see_environment(cred.environment_id) else None


async def check_token(sessions: async_sessionmaker[AsyncSession], token: str) -> Login | None:
    """The login a token opens (the SSH gateway asks, with the token as user name)."""
    if not looks_like_token(token):
        return None
    async with sessions() as session:
        cred = await queries.credential_by_password(session, hash_key(token))
        if cred is None or cred.key_fingerprint is not None:
            return None
        return await login_of(session, cred) if usable(cred, cred.environment_id) else None
