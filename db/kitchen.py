"""The kitchen board's data: today's tickets, their status changes and the dishes sold out for a day.

A ticket is a placed order; its status is its latest row in ``ticket_changes`` ("new" before any),
so every move is kept with who made it and when. A dish sold out ("86'd") is a row of ``sold_out``
for one of the restaurant's local days. The board (``memory_agent.datasette.kitchen``) writes
through these functions; the order tool asks ``is_sold_out`` before adding a dish.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from db.backend import Repository
from db.errors import NotFound
from db.schema.models import TICKET_STATUSES

MAX_BY = 60

# Today's placed orders (between two stored times), oldest first, each with its lines and status.
_TICKETS_SQL = """SELECT o.id, o.created_at, o.placed_at, o.kitchen_note, {pickup} AS pickup_at, c.caller_name,
       coalesce((SELECT t.status FROM ticket_changes AS t WHERE t.order_id = o.id ORDER BY t.id DESC LIMIT 1),
                'new') AS status,
       (SELECT t.changed_by || ' at ' || t.changed_at FROM ticket_changes AS t WHERE t.order_id = o.id
        ORDER BY t.id DESC LIMIT 1) AS last_change,
       (SELECT json_group_array(json_object('name', i.name, 'quantity', i.quantity,
                                            'modifications', json(i.modifications)))
        FROM (SELECT * FROM order_items WHERE order_id = o.id ORDER BY position) AS i) AS items
FROM orders AS o JOIN calls AS c ON c.id = o.call_id
WHERE o.status = 'placed' AND o.created_at >= ? AND o.created_at < ?
ORDER BY o.created_at, o.id"""

SOLD_OUT_SQL = "SELECT count(*) FROM sold_out WHERE menu_item = ? AND day = ?"


def tickets(db: sqlite3.Connection, day_start: str, day_end: str) -> list[dict[str, Any]]:
    """The day's tickets as plain data (the caller's first name only), oldest first."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(orders)")}
    sql = _TICKETS_SQL.format(pickup="o.pickup_at" if "pickup_at" in columns else "NULL")
    found = []
    for row in db.execute(sql, (day_start, day_end)):
        order_id, created_at, placed_at, note, pickup_at, name, status, last_change, items = row
        found.append(
            {
                "number": order_id,
                "placed_at": placed_at or created_at,
                "first_name": name.split()[0] if isinstance(name, str) and name.strip() else None,
                "allergy_note": note,
                "pickup_at": pickup_at,
                "status": status,
                "last_change": last_change,
                "items": json.loads(items or "[]"),
            }
        )
    return found


def sold_out_today(db: sqlite3.Connection, day: str) -> list[dict[str, Any]]:
    """The dishes marked sold out for ``day``, with who marked them and when."""
    rows = db.execute("SELECT menu_item, marked_by, marked_at FROM sold_out WHERE day = ? ORDER BY id", (day,))
    return [{"menu_item": item, "marked_by": by, "marked_at": at} for item, by, at in rows]


def _who(by: str) -> str:
    clean = " ".join(by.split())[:MAX_BY]
    if not clean:
        raise ValueError("say who makes the change")
    return clean


def move_ticket(db: sqlite3.Connection, order_id: int, status: str, by: str, now: str) -> None:
    """Record that ``by`` moved the ticket of ``order_id`` to ``status`` at ``now``, in a transaction of its own
    (on the board's one write connection: Datasette's ``execute_write_fn``)."""
    if status not in TICKET_STATUSES:
        raise ValueError(f"unknown status {status!r} (one of {', '.join(TICKET_STATUSES)})")
    with db:
        placed = db.execute("SELECT 1 FROM orders WHERE id = ? AND status = 'placed'", (order_id,)).fetchone()
        if placed is None:
            raise NotFound(f"no placed order {order_id}")
        db.execute(
            "INSERT INTO ticket_changes (order_id, status, changed_by, changed_at) VALUES (?, ?, ?, ?)",
            (order_id, status, _who(by), now),
        )


def mark_sold_out(db: sqlite3.Connection, menu_item: str, day: str, by: str, now: str) -> None:
    """Record that ``by`` marked ``menu_item`` sold out for the rest of ``day`` (the first mark stands), in a
    transaction of its own."""
    with db:
        db.execute(
            "INSERT INTO sold_out (menu_item, day, marked_by, marked_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (menu_item, day) DO NOTHING",
            (menu_item, day, _who(by), now),
        )


async def is_sold_out(repo: Repository, menu_item: str, day: str) -> bool:
    """Whether the kitchen marked ``menu_item`` sold out for the local ``day`` (either backend)."""
    rows = await repo.read(SOLD_OUT_SQL, (menu_item, day))
    return bool(rows and rows[0][0])
