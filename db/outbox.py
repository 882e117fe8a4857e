"""The outbox: placed orders waiting to reach the till, and their deliveries, on SQLite.

The end-of-call write (``db.statements.calls``) queues a placed order here in the transaction that
places it. The delivery worker (``memory_agent.outbox``) then gives each queued order one
delivery per configured destination (``dispatch``), claims the deliveries that are due (``claim``:
the claim moves their next attempt one lease ahead, so a worker killed mid-delivery leaves them due
again once the lease runs out), and records each attempt: delivered, due again later, or dead
(too many failures, or a failure no retry can mend). ``db.postgres.outbox`` is the same on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from db.errors import DatabaseUnavailable
from db.schema.models import Delivery, DeliveryStatus
from db.sqlite.connection import BUSY_TIMEOUT_MS, Writer, database_path, prepare

DISPATCH_SQL = """INSERT INTO deliveries (outbox_id, destination, next_attempt_at, created_at, updated_at)
SELECT x.id, d.destination, ?, ?, ? FROM outbox AS x, ({destinations}) AS d
WHERE x.dispatched_at IS NULL ON CONFLICT (outbox_id, destination) DO NOTHING"""
DISPATCHED_SQL = "UPDATE outbox SET dispatched_at = ? WHERE dispatched_at IS NULL"

# Due deliveries, oldest first; the claim moves each one's next attempt a lease ahead.
DUE_SQL = """SELECT d.id FROM deliveries AS d WHERE d.status = 'pending' AND d.next_attempt_at <= ?
ORDER BY d.next_attempt_at, d.id LIMIT ?"""
CLAIM_SQL = "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'"

_LISTED = """SELECT d.id, d.outbox_id, x.order_id, x.idempotency_key, d.destination, d.status, d.attempts,
       d.next_attempt_at, d.last_error, d.created_at, d.updated_at, d.delivered_at
FROM deliveries AS d JOIN outbox AS x ON x.id = d.outbox_id"""
DELIVERY_SQL = _LISTED + " WHERE d.id = ?"
LIST_SQL = _LISTED + " WHERE d.status IN ({statuses}) ORDER BY d.id"
# Orders queued and not yet given their deliveries (no worker has run since they were placed).
UNDISPATCHED_SQL = "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"

ATTEMPT_SQL = """UPDATE deliveries SET status = ?, attempts = attempts + 1, last_error = ?,
next_attempt_at = coalesce(?, next_attempt_at), updated_at = ?, delivered_at = ? WHERE id = ?"""
RETRY_SQL = """UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?
WHERE id = ? AND status != 'delivered'"""

# What a destination is sent: the order, its lines and the caller's first name (nothing else of theirs).
ORDER_SQL = "SELECT * FROM orders WHERE id = ?"
LINES_SQL = "SELECT * FROM order_items WHERE order_id = ? ORDER BY position"
CALLER_SQL = "SELECT caller_name FROM calls WHERE id = ?"


def idempotency_key(order_id: int, call_id: str) -> str:
    """The order's key at every destination: its id, and its call's (unique across databases)."""
    return f"order-{order_id}-{call_id}"


def destinations_sql(count: int, mark: str = "?") -> str:
    """A one-column table of ``count`` destination names, for ``DISPATCH_SQL``."""
    return " UNION ALL ".join([f"SELECT CAST({mark} AS TEXT) AS destination"] * count)


def first_name(name: object) -> str | None:
    """The first word of what the caller gave as their name."""
    if not isinstance(name, str) or not name.strip():
        return None
    return name.split()[0]


def document(order: dict[str, Any], lines: Sequence[dict[str, Any]], caller_name: object) -> dict[str, Any]:
    """The order as a destination reads it: plain data, money in integer cents."""
    keep = (
        "id",
        "status",
        "subtotal_cents",
        "tip_cents",
        "total_cents",
        "payment_method",
        "kitchen_note",
        "created_at",
        "placed_at",
        "pickup_at",
        "ready_at",
    )
    return {
        **{name: order[name] for name in keep if name in order},
        "caller_first_name": first_name(caller_name),
        "items": [
            {
                "menu_item": line["menu_item"],
                "name": line["name"],
                "quantity": line["quantity"],
                "unit_price_cents": line["unit_price_cents"],
                "modifications": json.loads(line["modifications"] or "[]"),
            }
            for line in lines
        ],
    }


class OutboxStore(Protocol):
    """The outbox's reads and writes, whichever database holds it."""

    async def dispatch(self, destinations: Sequence[str], now: str) -> None: ...

    async def claim(self, now: str, lease_until: str, limit: int) -> list[Delivery]: ...

    async def order_document(self, order_id: int) -> dict[str, Any] | None: ...

    async def record(
        self, delivery_id: int, status: DeliveryStatus, *, error: str | None, next_attempt_at: str | None, now: str
    ) -> None: ...

    async def deliveries(self, statuses: Sequence[DeliveryStatus]) -> list[Delivery]: ...

    async def delivery(self, delivery_id: int) -> Delivery | None: ...

    async def retry(self, delivery_id: int, now: str) -> bool: ...

    async def undispatched(self) -> int: ...


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """A delivery from a row of ``DELIVERY_SQL`` or ``LIST_SQL``."""
    names = (
        "id",
        "outbox_id",
        "order_id",
        "idempotency_key",
        "destination",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "updated_at",
        "delivered_at",
    )
    return Delivery.model_validate(dict(zip(names, row, strict=True)))


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
async def open_outbox(url_or_path: str | Path) -> AsyncIterator[OutboxStore]:
    """The outbox of the database ``url_or_path`` names (a ``postgresql://`` URL or a SQLite file), migrated."""
    from db.postgres.safe_url import is_postgres_url

    if is_postgres_url(url_or_path):
        from db.postgres.outbox import open_postgres_outbox

        async with open_postgres_outbox(str(url_or_path)) as pg:
            yield pg
        return
    path = database_path(url_or_path)
    await asyncio.to_thread(prepare, path, BUSY_TIMEOUT_MS)
    writer = Writer(path)
    await writer.start()
    try:
        yield SqliteOutbox(path, writer)
    finally:
        await writer.close()
