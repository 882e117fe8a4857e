"""The outbox on PostgreSQL: ``db.outbox``'s statements and behaviour, on one connection of its own.

Claims take ``FOR UPDATE SKIP LOCKED``, so delivery workers on several hosts never claim the same
delivery at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from db import outbox
from db.errors import DatabaseUnavailable
from db.postgres import migrate
from db.safe_url import redact_url
from db.schema.models import Delivery, DeliveryStatus

Conn = psycopg.AsyncConnection[Any]
CONNECT_TIMEOUT_S = 10


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresOutbox:
    """The outbox of a PostgreSQL database; one statement or transaction at a time on its connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()  # one connection: its transactions one after another

    async def dispatch(self, destinations: Sequence[str], now: str) -> None:
        async with self._lock, self.conn.transaction():
            if destinations:
                sql = outbox.DISPATCH_SQL.format(destinations=outbox.destinations_sql(len(destinations), "%s"))
                await self.conn.execute(_pg(sql), (now, now, now, *destinations))
            await self.conn.execute(_pg(outbox.DISPATCHED_SQL), (now,))

    async def claim(self, now: str, lease_until: str, limit: int) -> list[Delivery]:
        async with self._lock, self.conn.transaction():
            cur = await self.conn.execute(_pg(outbox.DUE_SQL) + " FOR UPDATE SKIP LOCKED", (now, limit))
            ids = [row[0] for row in await cur.fetchall()]
            claimed = []
            for delivery_id in ids:
                await self.conn.execute(_pg(outbox.CLAIM_SQL), (lease_until, now, delivery_id))
                cur = await self.conn.execute(_pg(outbox.DELIVERY_SQL), (delivery_id,))
                row = await cur.fetchone()
                assert row is not None  # locked by this transaction
                claimed.append(outbox.delivery_from_row(row))
            return claimed

    async def order_document(self, order_id: int) -> dict[str, Any] | None:
        async with self._lock, self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_pg(outbox.ORDER_SQL), (order_id,))
            order = await cur.fetchone()
            if order is None:
                return None
            await cur.execute(_pg(outbox.LINES_SQL), (order_id,))
            lines = await cur.fetchall()
            await cur.execute(_pg(outbox.CALLER_SQL), (order["call_id"],))
            caller = await cur.fetchone()
        return outbox.document(order, lines, caller["caller_name"] if caller else None)

    async def record(
        self, delivery_id: int, status: DeliveryStatus, *, error: str | None, next_attempt_at: str | None, now: str
    ) -> None:
        delivered_at = now if status == "delivered" else None
        async with self._lock:
            await self.conn.execute(
                _pg(outbox.ATTEMPT_SQL), (status, error, next_attempt_at, now, delivered_at, delivery_id)
            )

    async def deliveries(self, statuses: Sequence[DeliveryStatus]) -> list[Delivery]:
        sql = outbox.LIST_SQL.format(statuses=", ".join("%s" for _ in statuses))
        async with self._lock:
            cur = await self.conn.execute(_pg(sql), tuple(statuses))
            return [outbox.delivery_from_row(row) for row in await cur.fetchall()]

    async def delivery(self, delivery_id: int) -> Delivery | None:
        async with self._lock:
            cur = await self.conn.execute(_pg(outbox.DELIVERY_SQL), (delivery_id,))
            row = await cur.fetchone()
        return None if row is None else outbox.delivery_from_row(row)

    async def retry(self, delivery_id: int, now: str) -> bool:
        async with self._lock:
            cur = await self.conn.execute(_pg(outbox.RETRY_SQL), (now, now, delivery_id))
            return cur.rowcount > 0

    async def undispatched(self) -> int:
        async with self._lock:
            cur = await self.conn.execute(outbox.UNDISPATCHED_SQL)
            row = await cur.fetchone()
        return int(row[0]) if row else 0


@asynccontextmanager
async def open_postgres_outbox(url: str) -> AsyncIterator[PostgresOutbox]:
    """The outbox of the PostgreSQL database at ``url``, migrated first."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError:
        raise DatabaseUnavailable(f"database {redact_url(url)} unavailable: no connection") from None
    try:
        await migrate.migrate(conn)
        yield PostgresOutbox(conn)
    finally:
        await conn.close()
