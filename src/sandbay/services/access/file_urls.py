"""Signed file URLs: each environment's signing key (made on first use, kept as
Fernet ciphertext: the server must read it back to check a signature, so it cannot
be hashed), its rotation, and turning a signed request into a principal that may do
just that one file operation in just that environment."""

from typing import Protocol

from sandbay.db.models import SigningKeyModel
from sandbay.db.queries import signing_keys as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.errors import AuthenticationFailed
from sandbay.domain.file_urls import new_signing_key, signature_valid
from sandbay.domain.keys import KeyKind, Permission, Principal
from sandbay.kit.clock import utcnow
from sandbay.services.environments.records import get_environment

#: What a signed URL may do, by its HTTP method.
SIGNED_PERMISSION = {"GET": Permission.ENVIRONMENTS_READ, "POST": Permission.ENVIRONMENTS_EXEC}
REFUSED = "the signed URL is invalid, expired or its key was rotated"


class Cipher(Protocol):
    """What keeps the keys at rest (the platform's secrets box)."""

    def encrypt(self, secret: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str: ...


async def signing_key(
    session: AsyncSession, box: Cipher, principal: Principal, id_or_name: str
) -> str:
    """The environment's key (any caller who may read the environment may sign)."""
    env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_READ)
    row = await session.get(SigningKeyModel, env.id)
    if row is not None:
        return box.decrypt(row.key_ciphertext)
    key, now = new_signing_key(), utcnow()
    stored = await queries.add_first(
        session,
        SigningKeyModel(
            environment_id=env.id,
            org_id=env.org_id,
            key_ciphertext=box.encrypt(key),
            created_at=now,
            rotated_at=now,
        ),
    )
    return box.decrypt(stored.key_ciphertext)


async def rotate_key(
    session: AsyncSession, box: Cipher, principal: Principal, id_or_name: str
) -> str:
    """A new key; every URL signed with the old one is refused from now on."""
    env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
    key, now = new_signing_key(), utcnow()
    ciphertext = box.encrypt(key)
    row = await session.get(SigningKeyModel, env.id) or await queries.add_first(
        session,
        SigningKeyModel(
            environment_id=env.id,
            org_id=env.org_id,
            key_ciphertext=ciphertext,
            created_at=now,
            rotated_at=now,
        ),
    )
    row.key_ciphertext, row.rotated_at = ciphertext, now
    await session.flush()
    return key


async def signed_principal(
    session: AsyncSession,
    box: Cipher,
    environment_id: str,
    *,
    method: str,
    path: str,
    expires: int,
    signature: str,
) -> Principal:
    """Who a signed request acts as: the environment's organization, for this one
    environment and operation only. 401 for a signature that is not the current
    key's for this method, path and expiry, or has expired."""
    row = await session.get(SigningKeyModel, environment_id)
    if row is None or not signature_valid(
        box.decrypt(row.key_ciphertext), method, path, expires, signature, now=utcnow()
    ):
        raise AuthenticationFailed(REFUSED)
    return Principal(
        org_id=row.org_id,
        key_id=None,
        kind=KeyKind.SCOPED,
        permissions=frozenset({SIGNED_PERMISSION[method]}),
        environment_ids=frozenset({environment_id}),
        system="signed-url",
    )
