"""Alembic environment: uses the connection handed over by `sandbay.db.migrate`,
or, for `alembic revision --autogenerate`, the URL from SANDBAY settings."""

import asyncio

from alembic import context
from sqlalchemy import Connection

from sandbay.db import models  # noqa: F401  (registers the tables)
from sandbay.db.base import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_settings() -> None:
    from sandbay.db.engine import create_engine
    from sandbay.settings import Settings

    engine = create_engine(Settings().resolved_database_url())
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_settings())
