"""Queries of signing keys: adding an environment's first key, where two requests
may race (the loser keeps the winner's)."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import SigningKeyModel


async def add_first(session: AsyncSession, row: SigningKeyModel) -> SigningKeyModel:
    """Add `row` as its environment's key; the key already stored if another
    request added one first."""
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        stored = await session.get(SigningKeyModel, row.environment_id, populate_existing=True)
        if stored is None:
            raise
        return stored
    return row
