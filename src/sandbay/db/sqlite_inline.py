"""SQLite for the async engine without a thread per connection.

aiosqlite runs every call on a worker thread and hands the result back to the event
loop: for the point lookups an API does that hand-off costs twenty times the query itself.
This connection keeps aiosqlite's interface (so SQLAlchemy's aiosqlite dialect drives
it unchanged) but runs each call inline. It never blocks the loop on a lock: SQLite's
busy timeout is 0 and a busy database is retried with an async back-off instead,
which also lets the coroutine holding the write lock finish meanwhile."""

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite

_BUSY = ("database is locked", "database is busy")


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection], *, busy_wait: float) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._busy_wait = busy_wait

    def __await__(self) -> Any:  # no worker thread to start
        return self._connect().__await__()

    async def _connect(self) -> "InlineConnection":
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        deadline = time.monotonic() + self._busy_wait
        delay = 0.0005
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith(_BUSY) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    def stop(self) -> asyncio.Future[Any] | None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return None

    async def close(self) -> None:
        self.stop()


def connector(path: str) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        # timeout=0: a busy database answers at once and `_execute` waits asynchronously.
        return sqlite3.connect(path, timeout=0, check_same_thread=False)

    return connect
