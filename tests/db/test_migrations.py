"""The schema is made by the Alembic migrations only, and they match the models."""

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from sandbay.db import migrate
from sandbay.db.base import Base
from sandbay.db.engine import create_engine


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _roundtrip(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert {"environments", "events", "api_keys", "organizations"} <= await conn.run_sync(
                _tables
            )
        await migrate.downgrade(engine, "base")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) <= {"alembic_version"}
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def test_migrations_upgrade_downgrade_and_match_models_on_sqlite(tmp_path: Path) -> None:
    asyncio.run(_roundtrip(f"sqlite:///{tmp_path / 'm.db'}"))


def test_migrations_upgrade_downgrade_and_match_models_on_postgresql() -> None:
    from tests.support.postgres import create_database, drop_database

    url = create_database()
    try:
        asyncio.run(_roundtrip(url))
    finally:
        drop_database(url)
