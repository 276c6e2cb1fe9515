"""Short-lived SSH credentials (the CloudCLI brief's `GET …/ssh`): issue, list and
revoke them through the API, and check them when the SSH gateway is asked to log
someone in. Each credential is a password-like token and a one-time Ed25519 key,
shown once; only the token's SHA-256 and the key's fingerprint are stored."""

import secrets
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncssh

from sandbay.db.cas import with_cas_retry
from sandbay.db.models import EnvironmentModel, SshCredentialModel
from sandbay.db.queries import access as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain import ids
from sandbay.domain.access import SshCredential, SshCredentialInfo
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal, hash_key
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.egress.attached import process_variables
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.records import get_environment
from sandbay.services.events.record import record_environment_event, record_event

PASSWORD_PREFIX = "sbs_"  # noqa: S105  (a prefix, not a secret)
SSH = Permission.ENVIRONMENTS_EXEC


@dataclass(frozen=True, slots=True)
class SshEndpoint:
    """Where clients reach the gateway and how they recognise it."""

    host: str
    port: int
    host_key: str  # the public host key, OpenSSH format ("ssh-ed25519 AAAA…")
    fingerprint: str  # "SHA256:…"

    def known_hosts(self) -> str:
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key}"

    def command(self, username: str) -> str:
        return shlex.join(["ssh", "-p", str(self.port), f"{username}@{self.host}"])


@dataclass(frozen=True, slots=True)
class TtlLimits:
    default: float
    maximum: float

    def expiry(self, requested: float | None) -> datetime:
        seconds = self.default if requested is None else requested
        if seconds <= 0 or seconds > self.maximum:
            raise InvalidRequest(f"expires_in must be in (0, {self.maximum:g}] seconds")
        return utcnow() + timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Login:
    """A credential that checked out, with what the gateway needs to serve it."""

    credential_id: str
    environment_id: str
    org_id: str
    state: EnvState
    user: str | None
    env: dict[str, str]
    #: Variables removed in place: the login's processes do not inherit them.
    unset: tuple[str, ...] = ()


async def issue_credential(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    *,
    endpoint: SshEndpoint,
    ttl: TtlLimits,
    expires_in: float | None,
) -> SshCredential:
    """A new credential for the environment (in any state: logins wait for `running`)."""
    expires_at = ttl.expiry(expires_in)
    password = PASSWORD_PREFIX + secrets.token_urlsafe(24)

    async def attempt() -> tuple[EnvironmentModel, SshCredentialModel, asyncssh.SSHKey]:
        env = await get_environment(session, principal, id_or_name, SSH)
        if env.kind is EnvironmentKind.SELF_HOSTED:
            raise Conflict("a self-hosted environment runs on its own worker: no SSH here")
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"sandbay {env.id}")
        model = SshCredentialModel(
            id=ids.new_id(ids.SSH_CREDENTIAL),
            org_id=env.org_id,
            environment_id=env.id,
            password_hash=hash_key(password),
            key_fingerprint=key.get_fingerprint("sha256"),
            created_by=principal.actor,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        session.add(model)
        record_environment_event(
            session,
            env,
            "environment.ssh_credential_issued",
            actor=principal.actor,
            data={"credential_id": model.id, "expires_at": expires_at.isoformat()},
        )
        await session.flush()  # the reconciler may move the environment meanwhile
        return env, model, key

    env, model, key = await with_cas_retry(session, attempt)
    return SshCredential(
        id=model.id,
        environment_id=env.id,
        host=endpoint.host,
        port=endpoint.port,
        username=env.id,
        password=password,
        private_key=key.export_private_key("openssh").decode(),
        expires_at=expires_at,
        ssh_command=endpoint.command(env.id),
        host_key_fingerprint=endpoint.fingerprint,
        known_hosts=endpoint.known_hosts(),
    )


async def list_credentials(
    session: AsyncSession, principal: Principal, id_or_name: str
) -> list[SshCredentialInfo]:
    env = await get_environment(session, principal, id_or_name, SSH)
    return [
        SshCredentialInfo.model_validate(c) for c in await queries.credentials_of(session, env.id)
    ]


async def revoke_credentials(
    session: AsyncSession, principal: Principal, id_or_name: str, credential_id: str | None
) -> list[SshCredentialInfo]:
    """Revoke one credential (or all of the environment's when `credential_id` is
    None); the gateway closes the sessions they opened."""

    async def attempt() -> list[SshCredentialInfo]:
        env = await get_environment(session, principal, id_or_name, SSH)
        rows = await queries.credentials_of(session, env.id)
        if credential_id is not None:
            rows = [c for c in rows if c.id == credential_id]
            if not rows:
                raise NotFound(f"SSH credential {credential_id!r} not found")
        now = utcnow()
        for cred in rows:
            if cred.revoked_at is None:
                cred.revoked_at = now
                record_environment_event(
                    session,
                    env,
                    "environment.ssh_credential_revoked",
                    actor=principal.actor,
                    data={"credential_id": cred.id},
                )
        await session.flush()  # the reconciler may move the environment meanwhile
        return [SshCredentialInfo.model_validate(c) for c in rows]

    return await with_cas_retry(session, attempt)


def usable(cred: SshCredentialModel | None, environment_id: str) -> bool:
    return (
        cred is not None
        and cred.environment_id == environment_id
        and cred.revoked_at is None
        and cred.expires_at > utcnow()
    )


async def login_of(session: AsyncSession, cred: SshCredentialModel) -> Login | None:
    env = await session.get(EnvironmentModel, cred.environment_id)
    if env is None or env.deleted_at is not None:
        return None
    variables, unset = await process_variables(session, env)
    return Login(cred.id, env.id, env.org_id, env.state, env.user, variables, unset)


async def check_password(
    sessions: async_sessionmaker[AsyncSession], username: str, password: str
) -> Login | None:
    """The login a password opens for `username` (an environment id), if any."""
    async with sessions() as session:
        cred = await queries.credential_by_password(session, hash_key(password))
        return await login_of(session, cred) if cred and usable(cred, username) else None


async def check_key(
    sessions: async_sessionmaker[AsyncSession], username: str, fingerprint: str
) -> Login | None:
    """The login a one-time key (by fingerprint) opens for `username`, if any."""
    async with sessions() as session:
        for cred in await queries.credentials_by_key(session, username, fingerprint):
            if usable(cred, username):
                return await login_of(session, cred)
    return None


async def record_login(
    sessions: async_sessionmaker[AsyncSession], login: Login, *, method: str, peer: str
) -> None:
    """Every login is an event (and marks the credential used and the environment active)."""
    async with sessions() as session:
        now = utcnow()
        await queries.mark_credential_used(session, login.credential_id, now)
        await record_activity(session, login.environment_id)
        record_event(
            session,
            org_id=login.org_id,
            environment_id=login.environment_id,
            type="environment.ssh_login",
            actor=f"ssh:{login.credential_id}",
            from_state=login.state.value,
            to_state=login.state.value,
            data={"credential_id": login.credential_id, "method": method, "peer": peer},
        )
        await session.commit()


async def revoked(
    sessions: async_sessionmaker[AsyncSession], credential_ids: list[str]
) -> set[str]:
    async with sessions() as session:
        return await queries.revoked_credentials(session, credential_ids)


async def environment_states(
    sessions: async_sessionmaker[AsyncSession], environment_ids: list[str]
) -> dict[str, EnvState]:
    async with sessions() as session:
        return await queries.environment_states(session, environment_ids)
