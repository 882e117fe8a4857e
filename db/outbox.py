"""The outbox: placed orders waiting to reach the till, and their deliveries: its statements and interface.

The end-of-call write (``db.statements.calls``) queues a placed order here in the transaction that
places it. The delivery worker (``memory_agent.outbox``) then gives each queued order one
delivery per configured destination (``dispatch``), claims the deliveries that are due (``claim``:
the claim moves their next attempt one lease ahead, so a worker killed mid-delivery leaves them due
again once the lease runs out), and records each attempt: delivered, due again later, or dead
(too many failures, or a failure no retry can mend). ``db.sqlite.outbox`` and ``db.postgres.outbox`` keep it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from db.schema.models import Delivery, DeliveryStatus

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
