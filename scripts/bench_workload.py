"""What the benchmarks write and read, and the raw ``sqlite3`` references they are compared with.

Imports nothing but ``db``, so the writer processes of the concurrency benchmark start quickly.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from db import CallSnapshot, Feedback, Message, Order, OrderLine
from db.clock import utcnow_iso
from db.connection import BUSY_TIMEOUT_MS
from db.owner import current_owner
from db.statements.calls import RECALL
from db.statements.sql import compiled

MESSAGES_PER_FINISHED_CALL = 60
_ITEMS: tuple[tuple[str, str, int, int, list[str]], ...] = (
    ("margherita_pizza", "Margherita Pizza", 2, 1450, ["extra basil"]),
    ("pepperoni_pizza", "Pepperoni Pizza", 1, 1600, []),
    ("caesar_salad", "Caesar Salad", 1, 975, ["no croutons"]),
    ("spaghetti_carbonara", "Spaghetti Carbonara", 1, 1525, []),
    ("tiramisu", "Tiramisu", 2, 750, []),
)

# The raw reference for a caller lookup: the product's own statement, on a plain sqlite3 connection.
REFERENCE_RECALL_SQL = compiled(RECALL, "sqlite")


def finished_call(call_id: str, identity: str) -> CallSnapshot:
    """A typical finished call's final record: a placed order of 5 items, feedback, 60 transcript messages."""
    now = utcnow_iso()
    return CallSnapshot(
        call_id=call_id,
        identity=identity,
        started_at=now,
        caller_name="Maria",
        email="maria@example.com",
        order=Order(
            status="placed",
            items=[
                OrderLine(menu_item=i, name=n, quantity=q, unit_price_cents=p, modifications=m)
                for i, n, q, p, m in _ITEMS
            ],
            tip_cents=300,
            payment_method="card",
        ),
        feedback=Feedback(rating=4, comment="quick and friendly"),
        messages=[
            Message(
                role="user" if seq % 2 else "assistant",
                agent="ordertaker",
                content=f"Message {seq} of the call: a sentence about as long as people say on the phone.",
                created_at=now,
            )
            for seq in range(MESSAGES_PER_FINISHED_CALL)
        ],
        ended_at=now,
        end_reason="participant_disconnected",
    )


def open_raw(path: Path | str) -> sqlite3.Connection:
    """A plain sqlite3 connection with the PRAGMAs of a forced write (WAL, synchronous FULL, foreign keys)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def raw_finalize(conn: sqlite3.Connection, snap: CallSnapshot) -> None:
    """The reference write: the same rows as ``Repository.save_call`` of a final snapshot, in the fewest statements."""
    assert snap.identity is not None and snap.order is not None and snap.feedback is not None
    order, feedback, now = snap.order, snap.feedback, snap.ended_at
    owner = current_owner()
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The customer is found (or created) by identity with the product's own statement.
        customer_id = conn.execute(
            "INSERT INTO customers (participant_identity, household, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (participant_identity) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)"
            " RETURNING id",
            (snap.identity, snap.household or snap.identity, snap.started_at, snap.started_at),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason,"
            " owner_host, owner_pid, owner_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                snap.call_id,
                customer_id,
                snap.caller_name,
                snap.started_at,
                now,
                snap.end_reason,
                owner.host,
                owner.pid,
                owner.started,
            ),
        )
        order_id = conn.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
            " payment_method, created_at, updated_at, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                snap.call_id,
                customer_id,
                order.status,
                order.subtotal_cents,
                order.tip_cents,
                order.total_cents,
                order.payment_method,
                snap.started_at,
                now,
                now,
            ),
        ).lastrowid
        conn.executemany(
            "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents,"
            " modifications) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    order_id,
                    pos,
                    line.menu_item,
                    line.name,
                    line.quantity,
                    line.unit_price_cents,
                    json.dumps(line.modifications, ensure_ascii=False),
                )
                for pos, line in enumerate(order.items, start=1)
            ],
        )
        conn.execute(
            "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)",
            (snap.call_id, customer_id, feedback.rating, feedback.comment, now),
        )
        conn.executemany(
            "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (snap.call_id, seq, m.role, m.agent, m.content, m.created_at)
                for seq, m in enumerate(snap.messages, start=snap.first_seq)
            ],
        )
        conn.execute(
            "UPDATE customers SET name = ?, email = ?, call_count = call_count + 1, order_count = order_count + 1,"
            " lifetime_spend_cents = lifetime_spend_cents + ?, last_order_id = ?, last_rating = ?,"
            " last_feedback_comment = ?, last_seen_at = max(last_seen_at, ?) WHERE id = ?",
            (
                snap.caller_name,
                snap.email,
                order.total_cents,
                order_id,
                feedback.rating,
                feedback.comment,
                now,
                customer_id,
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
