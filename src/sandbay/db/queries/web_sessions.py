"""Dashboard sessions: the row of a cookie's secret, with the API key it acts as."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import ApiKeyModel, WebSessionModel


async def session_with_key(
    session: AsyncSession, token_hash: str
) -> tuple[WebSessionModel, ApiKeyModel] | None:
    query = (
        select(WebSessionModel, ApiKeyModel)
        .join(ApiKeyModel, ApiKeyModel.id == WebSessionModel.key_id)
        .where(WebSessionModel.token_hash == token_hash)
    )
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def end_session(session: AsyncSession, token_hash: str, now: datetime) -> None:
    await session.execute(
        update(WebSessionModel)
        .where(WebSessionModel.token_hash == token_hash, WebSessionModel.ended_at.is_(None))
        .values(ended_at=now)
    )
