"""Real databases for in-process tests: SQLite and PostgreSQL built by the real
migrations, once per test session, and sessions whose work is rolled back after
each test (or, for the few tests that need two connections, wiped)."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
from sqlalchemy import Connection, delete, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sandbay.db import migrate
from sandbay.db.base import Base
from sandbay.db.engine import create_engine
from sandbay.db.session import create_sessionmaker
from tests.support.postgres import create_database, drop_database

KINDS = ("sqlite", "postgresql")
W = TypeVar("W")
L = TypeVar("L")


@dataclass
class Database:
    """One migrated database of `kind`, with the engine the server would build."""

    kind: str
    url: str
    engine: AsyncEngine

    @property
    def inline(self) -> bool:
        return self.kind == "sqlite"  # the server's default: SQLite runs on the event loop

    def sessionmaker(self, info: dict[str, Any]) -> async_sessionmaker[AsyncSession]:
        """Sessions exactly as the server makes them (they commit for real)."""
        return create_sessionmaker(self.engine, info=info, inline=self.inline)

    @contextlib.asynccontextmanager
    async def rolled_back(
        self, info: dict[str, Any]
    ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        """Sessions made as the server makes them, all on one connection inside one
        transaction that is rolled back at the end: a session's commit releases a
        savepoint, its rollback returns to it, and nothing outlives the test."""
        async with self.engine.connect() as conn:
            outer = await conn.begin()
            if self.kind == "sqlite":
                # The sqlite3 driver opens its transaction lazily, at the first write,
                # so a savepoint would be the outermost one and its release a commit.
                await conn.exec_driver_sql("BEGIN")
            sessions = self.sessionmaker(info)
            sessions.configure(bind=conn, join_transaction_mode="create_savepoint")
            try:
                yield sessions
            finally:
                await outer.rollback()

    async def wipe(self) -> None:
        """Delete every row (after a test whose work was committed for real)."""
        async with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(delete(table))


@contextlib.asynccontextmanager
async def migrated_database(kind: str, directory: Path) -> AsyncIterator[Database]:
    """A new database of `kind` with the schema made by the Alembic migrations;
    dropped (PostgreSQL) or left in `directory` (SQLite) afterwards."""
    url = f"sqlite:///{directory / 'sandbay.db'}" if kind == "sqlite" else create_database()
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        yield Database(kind=kind, url=url, engine=engine)
    finally:
        await engine.dispose()
        if kind == "postgresql":
            drop_database(url)


@dataclass(frozen=True, slots=True)
class Race(Generic[W, L]):
    """How a race went: each side's answer (the loser's may be an error), and how
    often the loser's session rolled back."""

    winner: W
    loser: L | Exception
    loser_rollbacks: int


async def race(
    sessions: async_sessionmaker[AsyncSession],
    *,
    winner: Callable[[AsyncSession], Awaitable[W]],
    loser: Callable[[AsyncSession], Awaitable[L]],
) -> Race[W, L]:
    """Two requests on two connections, interleaved the one way that makes a
    compare-and-set loser: `winner` writes (uncommitted, so it holds the row);
    `loser` then reads the old row and tries to write it; only then does the
    winner commit. The loser's UPDATE waits for the winner's row lock (PostgreSQL)
    or the write lock (SQLite) and finds a newer version. (Should the loser
    finish without an UPDATE, the winner commits then.) `sessions` must commit
    for real (`committed_sessions`)."""
    async with sessions() as first, sessions() as second:
        won = await winner(first)
        connection = (await second.connection()).sync_connection
        assert connection is not None
        engine = connection.engine
        writing = anyio.Event()
        rollbacks = 0
        outcome: list[L | Exception] = []

        def on_statement(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
            if conn is connection and statement.lstrip().upper().startswith("UPDATE"):
                writing.set()

        def on_rollback(_session: Any) -> None:
            nonlocal rollbacks
            rollbacks += 1

        async def lose() -> None:
            try:
                outcome.append(await loser(second))
                await second.commit()
            except Exception as exc:  # the loser's answer may be an error
                outcome.append(exc)
            writing.set()

        event.listen(engine, "before_cursor_execute", on_statement)
        event.listen(second.sync_session, "after_rollback", on_rollback)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lose)
                with anyio.fail_after(30):
                    await writing.wait()
                await first.commit()
        finally:
            event.remove(engine, "before_cursor_execute", on_statement)
            event.remove(second.sync_session, "after_rollback", on_rollback)
    return Race(winner=won, loser=outcome[0], loser_rollbacks=rollbacks)
