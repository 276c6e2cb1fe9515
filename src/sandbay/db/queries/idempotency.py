"""Idempotency keys: claim a key (a unique row, first writer wins), read what the
first request answered, store that answer, release a claim, purge expired keys."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import IdempotencyKeyModel
from sandbay.kit.clock import utcnow

Ref = tuple[str, str, str]  # (org_id, key, route)


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    ref: Ref,
    fingerprint: str,
    *,
    ttl: float,
    abandoned_after: float,
) -> IdempotencyKeyModel | None:
    """None when this request now owns the key; else the row that holds it. An
    expired row, or a claim left in progress longer than `abandoned_after` (its
    server died), is taken over."""
    org_id, key, route = ref
    now = utcnow()
    async with sessions() as session:
        await session.execute(
            delete(IdempotencyKeyModel).where(
                *_is(ref),
                (IdempotencyKeyModel.expires_at <= now)
                | (
                    IdempotencyKeyModel.status_code.is_(None)
                    & (IdempotencyKeyModel.created_at <= now - timedelta(seconds=abandoned_after))
                ),
            )
        )
        session.add(
            IdempotencyKeyModel(
                org_id=org_id,
                key=key,
                route=route,
                fingerprint=fingerprint,
                status_code=None,
                headers=[],
                body=None,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
            )
        )
        try:
            await session.commit()
            return None
        except IntegrityError:
            await session.rollback()
    return await read(sessions, ref)


async def read(sessions: async_sessionmaker[AsyncSession], ref: Ref) -> IdempotencyKeyModel | None:
    async with sessions() as session:
        row = (await session.execute(select(IdempotencyKeyModel).where(*_is(ref)))).scalar()
        await session.commit()
        return row


async def store(
    sessions: async_sessionmaker[AsyncSession],
    ref: Ref,
    *,
    status_code: int,
    headers: list[Any],
    body: bytes,
) -> None:
    async with sessions() as session:
        await session.execute(
            update(IdempotencyKeyModel)
            .where(*_is(ref))
            .values(status_code=status_code, headers=headers, body=body)
        )
        await session.commit()


async def release(sessions: async_sessionmaker[AsyncSession], ref: Ref) -> None:
    """Forget an in-progress claim whose request failed: a retry runs it again."""
    async with sessions() as session:
        await session.execute(
            delete(IdempotencyKeyModel).where(*_is(ref), IdempotencyKeyModel.status_code.is_(None))
        )
        await session.commit()


async def purge_expired(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    async with sessions() as session:
        result = await session.execute(
            delete(IdempotencyKeyModel).where(IdempotencyKeyModel.expires_at <= now)
        )
        await session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _is(ref: Ref) -> tuple[Any, ...]:
    org_id, key, route = ref
    return (
        IdempotencyKeyModel.org_id == org_id,
        IdempotencyKeyModel.key == key,
        IdempotencyKeyModel.route == route,
    )
