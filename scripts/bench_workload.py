"""What the benchmarks write and read, and the raw ``sqlite3`` references they are compared with.

Imports nothing but ``db``, so the writer processes of the concurrency benchmark start quickly.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from db import CallRecord, FeedbackRecord, ItemRecord, MessageRecord, OrderRecord
from db.clock import utcnow_iso
from db.repository import BUSY_TIMEOUT_MS

MESSAGES_PER_FINISHED_CALL = 60
_ITEMS: tuple[tuple[str, str, int, int, list[str]], ...] = (
    ("margherita_pizza", "Margherita Pizza", 2, 1450, ["extra basil"]),
    ("pepperoni_pizza", "Pepperoni Pizza", 1, 1600, []),
    ("caesar_salad", "Caesar Salad", 1, 975, ["no croutons"]),
    ("spaghetti_carbonara", "Spaghetti Carbonara", 1, 1525, []),
    ("tiramisu", "Tiramisu", 2, 750, []),
)

# The raw reference for a caller lookup: the same rows the product reads, by hand on sqlite3.
REFERENCE_RECALL_SQL = """
SELECT c.id, c.name, c.email, c.call_count, c.order_count, c.lifetime_spend_cents,
       c.last_rating, c.last_feedback_comment,
       o.created_at, o.total_cents, i.menu_item, i.name, i.quantity, i.modifications
FROM customers AS c
LEFT JOIN orders AS o ON o.id = c.last_order_id
LEFT JOIN order_items AS i ON i.order_id = o.id
WHERE c.participant_identity = ?
ORDER BY i.position
"""


def finished_call(call_id: str, customer_id: int) -> CallRecord:
    """A typical finished call: a placed order of 5 items, feedback, 60 transcript messages."""
    now = utcnow_iso()
    return CallRecord(
        call_id=call_id,
        customer_id=customer_id,
        caller_name="Maria",
        email="maria@example.com",
        order=OrderRecord(
            status="placed",
            items=[
                ItemRecord(menu_item_id=i, name=n, quantity=q, unit_price_cents=p, modifications=m)
                for i, n, q, p, m in _ITEMS
            ],
            tip_cents=300,
            payment_method="card",
        ),
        feedback=FeedbackRecord(rating=4, comment="quick and friendly"),
        messages=[
            MessageRecord(
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
    """A plain sqlite3 connection with the product's PRAGMAs (WAL, synchronous FULL, foreign keys)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def raw_finalize(conn: sqlite3.Connection, record: CallRecord) -> None:
    """The reference write: the same rows as ``Repository.finalize_call``, in the fewest statements."""
    assert record.order is not None and record.feedback is not None
    order = record.order
    now = record.ended_at
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (record.call_id, record.customer_id, record.caller_name, now, now, record.end_reason),
        )
        order_id = conn.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
            " payment_method, created_at, updated_at, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.call_id, record.customer_id, order.status, order.subtotal_cents, order.tip_cents,
             order.total_cents, order.payment_method, now, now, now),
        ).lastrowid
        conn.executemany(
            "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents,"
            " modifications) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (order_id, pos, it.menu_item_id, it.name, it.quantity, it.unit_price_cents,
                 json.dumps(it.modifications, ensure_ascii=False))
                for pos, it in enumerate(order.items, start=1)
            ],
        )
        conn.execute(
            "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)",
            (record.call_id, record.customer_id, record.feedback.rating, record.feedback.comment, now),
        )
        conn.executemany(
            "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(record.call_id, seq, m.role, m.agent, m.content, m.created_at)
             for seq, m in enumerate(record.messages, start=1)],
        )
        conn.execute(
            "UPDATE customers SET name = ?, email = ?, order_count = order_count + 1,"
            " lifetime_spend_cents = lifetime_spend_cents + ?, last_order_id = ?, last_rating = ?,"
            " last_feedback_comment = ?, last_seen_at = max(last_seen_at, ?) WHERE id = ?",
            (record.caller_name, record.email, order.total_cents, order_id, record.feedback.rating,
             record.feedback.comment, now, record.customer_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
