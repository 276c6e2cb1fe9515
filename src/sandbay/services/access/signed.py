"""Signed preview URLs: a token that is part of the URL itself (its host label
`{port}-{token}.{domain}`, or the path `/preview/{token}/{port}/`), so the URL opens
one port of one environment without any header until it expires or is expired.
Stored as a preview token marked `signed` (only its hash); a signed token is never
accepted as a header token, nor a header token as a signed one."""

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbay.db.models import PreviewTokenModel
from sandbay.db.queries import access as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.access import MAX_PORT
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict, InvalidRequest
from sandbay.domain.keys import Principal, hash_key
from sandbay.kit.clock import utcnow
from sandbay.services.access.preview import PREVIEW
from sandbay.services.environments.records import get_environment
from sandbay.services.events.record import record_environment_event

#: Lower case (a host label is case-insensitive) and longer than an environment id's
#: 32 hex digits, so the proxy never mistakes one for the other.
_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_LENGTH = 40
DEFAULT_SECONDS = 60
MAX_SECONDS = 24 * 3600


def new_signed_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))


def looks_signed(value: str) -> bool:
    return len(value) == TOKEN_LENGTH and all(c in _ALPHABET for c in value)


@dataclass(frozen=True, slots=True)
class SignedPreview:
    environment_id: str
    port: int
    token: str
    expires_at: datetime


async def issue_signed(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    port: int,
    expires_in: int | None,
) -> SignedPreview:
    """A signed token for one port, valid `expires_in` seconds (1 s to 24 h, 60 by
    default, as Daytona's)."""
    seconds = DEFAULT_SECONDS if expires_in is None else expires_in
    if not 1 <= port <= MAX_PORT:
        raise InvalidRequest("Invalid port")
    if not 1 <= seconds <= MAX_SECONDS:
        raise InvalidRequest("expiresInSeconds must be between 1 second and 24 hours")
    env = await get_environment(session, principal, id_or_name, PREVIEW)
    if env.kind is EnvironmentKind.SELF_HOSTED:
        raise Conflict("a self-hosted environment runs on its own worker: no preview here")
    token = new_signed_token()
    model = PreviewTokenModel(
        id=ids.new_id(ids.PREVIEW_TOKEN),
        org_id=env.org_id,
        environment_id=env.id,
        token_hash=hash_key(token),
        port=port,
        created_by=principal.actor,
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(seconds=seconds),
        signed=True,
    )
    session.add(model)
    record_environment_event(
        session,
        env,
        "environment.signed_preview_issued",
        actor=principal.actor,
        data={"token_id": model.id, "port": port, "expires_in": seconds},
    )
    await session.flush()
    return SignedPreview(env.id, port, token, model.expires_at)


async def expire_signed(
    session: AsyncSession, principal: Principal, id_or_name: str, port: int, token: str
) -> None:
    """End a signed URL now (a token that is not one of this port's is left alone:
    the outcome asked for, a URL that does not open, holds either way)."""
    env = await get_environment(session, principal, id_or_name, PREVIEW)
    row = await queries.preview_token(session, hash_key(token))
    if row is None or not row.signed or row.environment_id != env.id or row.port != port:
        return
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record_environment_event(
            session,
            env,
            "environment.signed_preview_expired",
            actor=principal.actor,
            data={"token_id": row.id, "port": port},
        )
        await session.flush()
