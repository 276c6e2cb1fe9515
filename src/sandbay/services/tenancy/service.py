"""The tenancy capability as one object: who a secret belongs to, with the operator
key and this process's cache of verified keys bound."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.keys import Principal, hash_key
from sandbay.services.tenancy.auth import KeyCache, authenticate, check_secret
from sandbay.services.tenancy.sessions import (
    SignIn,
    close_session,
    open_session,
    session_principal,
)


@dataclass(frozen=True, slots=True)
class TenancyService:
    sessions: async_sessionmaker[AsyncSession]
    key_cache: KeyCache
    admin_key: str | None = None

    async def resolve_principal(self, secret: str | None) -> Principal:
        """Operator key, a recently verified key (no database read), or a lookup in a
        short session of its own, so long requests (wait, streams) hold no connection."""
        operator = check_secret(secret, admin_key=self.admin_key)
        if operator is not None:
            return operator
        if (cached := self.key_cache.get(hash_key(secret or ""))) is not None:
            return cached
        async with self.sessions() as session:
            principal = await authenticate(session, secret, admin_key=self.admin_key)
            await session.commit()
        return principal

    async def sign_in(self, api_key: str) -> SignIn:
        """A dashboard session for `api_key` (401 for a bad key or the operator key)."""
        async with self.sessions() as session:
            signed = await open_session(session, api_key, admin_key=self.admin_key)
            await session.commit()
        return signed

    async def resolve_session(self, secret: str) -> Principal:
        """The Principal of a dashboard session's cookie, in a short session of its own."""
        if (cached := self.key_cache.get(hash_key(secret))) is not None:
            return cached
        async with self.sessions() as session:
            return await session_principal(session, secret, self.key_cache)

    async def sign_out(self, secret: str) -> None:
        async with self.sessions() as session:
            await close_session(session, secret, self.key_cache)
            await session.commit()
