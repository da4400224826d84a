"""asyncio connections to a `PostgresStore`'s database, for `PreferenceMemory`'s async reads.

A psycopg `AsyncConnection` belongs to the event loop it was opened on, so each loop gets its
own small set (at most the sync pool's size), opened on demand and reused. No background task
is started: a loop that ends leaves only idle connections, closed when collected or by `aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["AsyncConnections"]


class _LoopConnections:
    """The idle connections of one loop and a count of all it opened."""

    def __init__(self, limit: int) -> None:
        self.idle: list[AsyncConnection[Any]] = []
        self.opened = 0
        self.available = asyncio.Semaphore(limit)


class AsyncConnections:
    """Per-event-loop asyncio connections to one database (see the module docstring)."""

    def __init__(self, conninfo: str, max_size: int | None) -> None:
        self._conninfo = conninfo
        self._limit = max(int(max_size or 4), 1)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = (
            weakref.WeakKeyDictionary()
        )

    def _mine(self) -> _LoopConnections:
        loop = asyncio.get_running_loop()
        mine = self._loops.get(loop)
        if mine is None:
            mine = self._loops[loop] = _LoopConnections(self._limit)
        return mine

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """An idle connection of this loop, or a new one (at most `max_size` at once)."""
        mine = self._mine()
        async with mine.available:
            conn = mine.idle.pop() if mine.idle else None
            if conn is None or conn.closed:
                conn = await AsyncConnection.connect(
                    self._conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row
                )
                mine.opened += 1
            healthy = False
            try:
                yield conn
                healthy = not conn.closed and conn.info.transaction_status == 0  # IDLE
            finally:
                if healthy:
                    mine.idle.append(conn)
                else:
                    await conn.close()

    async def aclose(self) -> None:
        """Close the idle connections of the running loop."""
        mine = self._loops.pop(asyncio.get_running_loop(), None)
        for conn in mine.idle if mine else []:
            await conn.close()
