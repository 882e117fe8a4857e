"""The caller lookup's own connection, kept outside the pool (as SQLite's separate reader).

A read through the pool pays for the checkout and its hop, about as much as the lookup itself on a
connection of its own. This connection serves one lookup at a time; a lookup that arrives while it
is busy is told so (``busy``) and reads through the pool instead, so concurrent calls never queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import AsyncRowFactory

Conn = psycopg.AsyncConnection[Any]


class LookupConnection:
    """One connection for lookups, opened by ``connect`` and opened again when the server closed it."""

    def __init__(self, connect: Callable[[], Awaitable[Conn]]) -> None:
        self.connect = connect
        self.conn: Conn | None = None
        self.lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """A lookup is running on it (another should take a pooled connection)."""
        return self.lock.locked()

    async def open(self) -> None:
        async with self.lock:
            await self._connected()

    async def fetch(
        self, sql: str, params: Sequence[object] | Mapping[str, object], row_factory: AsyncRowFactory[Any]
    ) -> list[Any]:
        """Rows of one statement, prepared on this connection; once more on a new one if the server had closed it."""
        async with self.lock:
            conn = await self._connected()
            try:
                return await _rows(conn, sql, params, row_factory)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if not conn.broken and not conn.closed:
                    raise  # the statement failed (a timeout), not the connection
            await self._drop()  # a server restart or an idle timeout: a read is safe to repeat
            return await _rows(await self._connected(), sql, params, row_factory)

    async def close(self) -> None:
        async with self.lock:
            await self._drop()

    async def _connected(self) -> Conn:
        if self.conn is None or self.conn.closed:
            self.conn = await self.connect()
        return self.conn

    async def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()


async def _rows(
    conn: Conn, sql: str, params: Sequence[object] | Mapping[str, object], row_factory: AsyncRowFactory[Any]
) -> list[Any]:
    async with conn.cursor(row_factory=row_factory) as cur:
        await cur.execute(sql, params, prepare=True)
        return await cur.fetchall()
