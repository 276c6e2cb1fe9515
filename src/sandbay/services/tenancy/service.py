"""The tenancy capability as one object: who a secret belongs to, with the operator
key and this process's cache of verified keys bound."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.keys import Principal, hash_key
from sandbay.services.tenancy.auth import KeyCache, authenticate, check_secret


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
