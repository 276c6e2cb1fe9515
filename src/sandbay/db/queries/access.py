"""Queries of access from outside: SSH credentials, preview tokens, and the few
environment columns the SSH gateway and the preview proxy check on every login or
request."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.db.models import PreviewTokenModel, SshCredentialModel
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.states import EnvState


async def credential_by_password(
    session: AsyncSession, password_hash: str
) -> SshCredentialModel | None:
    query = select(SshCredentialModel).where(SshCredentialModel.password_hash == password_hash)
    return (await session.execute(query)).scalars().first()


async def credentials_by_key(
    session: AsyncSession, environment_id: str, fingerprint: str
) -> list[SshCredentialModel]:
    query = select(SshCredentialModel).where(
        SshCredentialModel.environment_id == environment_id,
        SshCredentialModel.key_fingerprint == fingerprint,
    )
    return list((await session.execute(query)).scalars())


async def credentials_of(session: AsyncSession, environment_id: str) -> list[SshCredentialModel]:
    query = (
        select(SshCredentialModel)
        .where(SshCredentialModel.environment_id == environment_id)
        .order_by(SshCredentialModel.id.desc())
    )
    return list((await session.execute(query)).scalars())


async def revoked_credentials(session: AsyncSession, credential_ids: Sequence[str]) -> set[str]:
    """Those of `credential_ids` that are revoked (or gone)."""
    if not credential_ids:
        return set()
    query = select(SshCredentialModel.id).where(
        SshCredentialModel.id.in_(list(credential_ids)), SshCredentialModel.revoked_at.is_(None)
    )
    live = set((await session.execute(query)).scalars())
    return set(credential_ids) - live


async def mark_credential_used(session: AsyncSession, credential_id: str, now: datetime) -> None:
    await session.execute(
        update(SshCredentialModel)
        .where(SshCredentialModel.id == credential_id)
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def preview_token(session: AsyncSession, token_hash: str) -> PreviewTokenModel | None:
    query = select(PreviewTokenModel).where(PreviewTokenModel.token_hash == token_hash)
    return (await session.execute(query)).scalars().first()


async def environment_states(session: AsyncSession, env_ids: Sequence[str]) -> dict[str, EnvState]:
    """State of each environment (missing ones are absent)."""
    if not env_ids:
        return {}
    query = select(Env.id, Env.state).where(Env.id.in_(list(env_ids)))
    return {row.id: row.state for row in await session.execute(query)}


async def running_managed(session: AsyncSession, runner_id: str) -> list[Env]:
    """Running managed environments of a runner (which of them a network policy
    restricts is `records.network_rules`' to say)."""
    query = select(Env).where(
        Env.state == EnvState.RUNNING,
        Env.kind == EnvironmentKind.MANAGED,
        Env.runner_id == runner_id,
    )
    return list((await session.execute(query)).scalars())
