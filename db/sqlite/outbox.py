"""The outbox (``db.outbox``) on SQLite: writes through the one writer thread, reads on a connection of their own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from db.errors import DatabaseUnavailable
from db.outbox import (
    ATTEMPT_SQL,
    CALLER_SQL,
    CLAIM_SQL,
    DELIVERY_SQL,
    DISPATCH_SQL,
    DISPATCHED_SQL,
    DUE_SQL,
    LINES_SQL,
    LIST_SQL,
    ORDER_SQL,
    RETRY_SQL,
    UNDISPATCHED_SQL,
    delivery_from_row,
    destinations_sql,
    document,
)
from db.schema.models import Delivery, DeliveryStatus
from db.sqlite.connection import BUSY_TIMEOUT_MS, Writer, database_path, prepare


class SqliteOutbox:
    """The outbox of a SQLite file: writes through the one writer thread, reads on a connection of their own."""

    def __init__(self, path: str, writer: Writer) -> None:
        self.path = path
        self.writer = writer

    async def dispatch(self, destinations: Sequence[str], now: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            if destinations:
                sql = DISPATCH_SQL.format(destinations=destinations_sql(len(destinations)))
                db.execute(sql, (now, now, now, *destinations))
            db.execute(DISPATCHED_SQL, (now,))

        await self.writer.run(write)

    async def claim(self, now: str, lease_until: str, limit: int) -> list[Delivery]:
        def write(db: sqlite3.Connection) -> list[Delivery]:
            ids = [row[0] for row in db.execute(DUE_SQL, (now, limit))]
            for delivery_id in ids:
                db.execute(CLAIM_SQL, (lease_until, now, delivery_id))
            return [delivery_from_row(db.execute(DELIVERY_SQL, (i,)).fetchone()) for i in ids]

        return await self.writer.run(write)

    async def order_document(self, order_id: int) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._read, _order_document, order_id)

    async def record(
        self, delivery_id: int, status: DeliveryStatus, *, error: str | None, next_attempt_at: str | None, now: str
    ) -> None:
        delivered_at = now if status == "delivered" else None
        params = (status, error, next_attempt_at, now, delivered_at, delivery_id)
        await self.writer.run(_execute, ATTEMPT_SQL, params, forced=status != "pending")

    async def deliveries(self, statuses: Sequence[DeliveryStatus]) -> list[Delivery]:
        sql = LIST_SQL.format(statuses=", ".join("?" * len(statuses)))
        rows = await asyncio.to_thread(self._read, lambda db: db.execute(sql, tuple(statuses)).fetchall())
        return [delivery_from_row(row) for row in rows]

    async def delivery(self, delivery_id: int) -> Delivery | None:
        row = await asyncio.to_thread(self._read, lambda db: db.execute(DELIVERY_SQL, (delivery_id,)).fetchone())
        return None if row is None else delivery_from_row(row)

    async def retry(self, delivery_id: int, now: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            return db.execute(RETRY_SQL, (now, now, delivery_id)).rowcount > 0

        return await self.writer.run(write, forced=True)

    async def undispatched(self) -> int:
        return int(await asyncio.to_thread(self._read, lambda db: db.execute(UNDISPATCHED_SQL).fetchone()[0]))

    def _read(self, read: Any, *args: object) -> Any:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA query_only = ON")
            return read(conn, *args)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"database read failed: {exc}") from None
        finally:
            conn.close()


def _execute(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> None:
    db.execute(sql, params)


def _order_document(db: sqlite3.Connection, order_id: int) -> dict[str, Any] | None:
    order = db.execute(ORDER_SQL, (order_id,)).fetchone()
    if order is None:
        return None
    lines = [dict(row) for row in db.execute(LINES_SQL, (order_id,))]
    caller = db.execute(CALLER_SQL, (order["call_id"],)).fetchone()
    return document(dict(order), lines, caller[0] if caller else None)


@asynccontextmanager
async def open_sqlite_outbox(url_or_path: str | Path) -> AsyncIterator[SqliteOutbox]:
    """The outbox of the SQLite file, migrated."""
    path = database_path(url_or_path)
    await asyncio.to_thread(prepare, path, BUSY_TIMEOUT_MS)
    writer = Writer(path)
    await writer.start()
    try:
        yield SqliteOutbox(path, writer)
    finally:
        await writer.close()
