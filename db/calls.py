"""The calls' SQL: the caller lookup, and writing a call's snapshot (idempotent, keyed by the call).

The write functions run on the writer thread inside a transaction that ``db.connection.Writer``
opened. Column lists come from the models in ``db.models``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from db import outbox, spool, stale
from db.errors import CallerErased
from db.migrations import USUAL_ORDER_SQL
from db.models import (
    USAGE_FIELDS,
    CallerFact,
    CallSnapshot,
    CustomerBase,
    CustomerMemory,
    Feedback,
    Message,
    Order,
    OrderLine,
    PastOrder,
    StaffMessage,
    columns,
    values,
)
from db.privacy import AuditKey, erased_since_query

_CUSTOMER = columns(CustomerBase)
_LINE = columns(OrderLine)

_FACT = columns(CallerFact)
MAX_FACTS = 60  # told to the agents at most; the memory text is cut to fit anyway

_PROFILES_SQL = f"""
SELECT c.id, c.participant_identity, {", ".join("c." + name for name in _CUSTOMER)},
       (SELECT json_group_array(json_array({", ".join(_FACT)})) FROM (
            SELECT * FROM caller_facts WHERE customer_id = c.id AND superseded_at IS NULL AND value IS NOT NULL
            ORDER BY kind, stated_at DESC, id DESC LIMIT {MAX_FACTS})) AS facts,
       (SELECT json_group_array(json_array({", ".join(_LINE)})) FROM (
            SELECT * FROM order_items WHERE order_id = c.usual_order_id ORDER BY position)) AS usual,
       o.created_at, o.total_cents,
       {", ".join("i." + name for name in _LINE)}
FROM customers AS c
LEFT JOIN orders AS o ON o.id = c.last_order_id
LEFT JOIN order_items AS i ON i.order_id = o.id
"""
# One profile, by its key.
RECALL_SQL = _PROFILES_SQL + "WHERE c.participant_identity = ? ORDER BY i.position"
# Every profile that answers on one number (a household), oldest first.
HOUSEHOLD_SQL = _PROFILES_SQL + "WHERE c.household = ? ORDER BY c.id, i.position"

_INSERT_LINE = f"INSERT INTO order_items (order_id, position, {', '.join(_LINE)}) VALUES (?, ?{', ?' * len(_LINE)})"

CALL_SUMMARY_SQL = """
SELECT c.end_reason, o.id AS order_id, o.status, o.total_cents, o.kitchen_note,
       (SELECT group_concat(i.quantity || 'x ' || i.name, ', ') FROM
         (SELECT * FROM order_items WHERE order_id = o.id ORDER BY position) AS i) AS items,
       (SELECT rating FROM feedback WHERE call_id = c.id) AS rating,
       (SELECT count(*) FROM messages WHERE call_id = c.id) AS messages
FROM calls AS c LEFT JOIN orders AS o ON o.call_id = c.id WHERE c.id = ?
"""


# A customer's last placed orders, newest first, a row per line.
PAST_ORDERS_SQL = f"""
SELECT o.id, o.created_at, o.total_cents, {", ".join("i." + name for name in _LINE)}
FROM (SELECT id, created_at, total_cents FROM orders
      WHERE customer_id = (SELECT id FROM customers WHERE participant_identity = ?) AND status = 'placed'
      ORDER BY created_at DESC, id DESC LIMIT ?) AS o
JOIN order_items AS i ON i.order_id = o.id
ORDER BY o.created_at DESC, o.id DESC, i.position
"""


def line_from_row(row: Sequence[Any]) -> OrderLine:
    """An order line from its columns in ``columns(OrderLine)`` order."""
    return OrderLine.model_validate(dict(zip(_LINE, row, strict=True)))


def past_orders_from_rows(rows: Sequence[Sequence[Any]]) -> list[PastOrder]:
    """The orders in the rows of ``PAST_ORDERS_SQL``, in their order."""
    orders: dict[int, PastOrder] = {}
    for row in rows:
        order = orders.setdefault(row[0], PastOrder(created_at=row[1], total_cents=row[2], items=[]))
        order.items.append(line_from_row(row[3:]))
    return list(orders.values())


def profiles_from_rows(rows: Sequence[Sequence[Any]]) -> tuple[CustomerMemory, ...]:
    """The profiles in the rows of ``RECALL_SQL`` or ``HOUSEHOLD_SQL`` (a row per line of each last order)."""
    at = 4 + len(_CUSTOMER)
    profiles: list[CustomerMemory] = []
    by_customer: dict[int, list[Sequence[Any]]] = {}
    for row in rows:
        by_customer.setdefault(row[0], []).append(row)
    for customer_id, own in by_customer.items():
        first = own[0]
        lines = tuple(line_from_row(row[at + 2 :]) for row in own if row[at + 2] is not None)
        facts = tuple(
            CallerFact.model_validate(dict(zip(_FACT, fact, strict=True))) for fact in json.loads(first[at - 2] or "[]")
        )
        usual = tuple(line_from_row(line) for line in json.loads(first[at - 1] or "[]"))
        profiles.append(
            CustomerMemory(
                customer_id=customer_id,
                key=first[1],
                **dict(zip(_CUSTOMER, first[2 : at - 2], strict=True)),
                facts=facts,
                usual_items=usual,
                last_order_at=first[at],
                last_order_total_cents=first[at + 1],
                last_order_items=lines,
            )
        )
    return tuple(profiles)


# -- writing a snapshot --------------------------------------------------------------------------


def write_call(
    db: sqlite3.Connection, snap: CallSnapshot, now: str, careful: bool, audit_key: AuditKey | None = None
) -> list[str]:
    """Write what ``snap`` holds; returns the parts left out (``careful`` only).

    Safe to repeat and to replay late: a snapshot older than the call's end changes nothing,
    a placed order is final, and what it says of the customer never undoes a newer call's.
    With ``careful``, each part is written on its own, so one bad row never loses the rest.
    Raises ``CallerErased``, writing nothing, if the caller was erased since the call began (checked
    under the write lock, so an erasure is either seen here or made after this write, and erases it).
    """
    if audit_key is not None and (erased := erased_since_query(audit_key, snap)) is not None:
        if db.execute(*erased).fetchone()[0]:
            raise CallerErased(f"call {snap.call_id}: its caller was erased after it began")
    started = snap.started_at or snap.ended_at or now
    customer_id = None
    if snap.identity is not None:
        customer_id = _upsert_customer(db, snap.identity, snap.household or snap.identity, started)
    existing = db.execute("SELECT ended_at, customer_id FROM calls WHERE id = ?", (snap.call_id,)).fetchone()
    if existing is None:
        db.execute(
            "INSERT INTO calls (id, customer_id, started_at, caller_number, owner_host, owner_pid, owner_started)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                snap.call_id,
                customer_id,
                started,
                snap.household or snap.identity,
                snap.owner_host,
                snap.owner_pid,
                snap.owner_started,
            ),
        )
        if customer_id is not None:
            db.execute("UPDATE customers SET call_count = call_count + 1 WHERE id = ?", (customer_id,))
    elif existing[0] is not None and not snap.final:
        # Closed by another process (its owner looked dead), yet the call goes on: a placed order stands.
        if snap.order is not None and snap.order.status == "placed":
            _write_order(db, snap.call_id, existing[1], snap.order, started, now)
        return []
    elif existing[1] is None and customer_id is not None:
        _link(db, snap.call_id, customer_id)
    at = snap.ended_at or now
    skipped: list[str] = []

    def part(what: str, write: Callable[..., None], *args: object) -> None:
        if not careful:
            write(db, *args)
            return
        db.execute("SAVEPOINT part")
        try:
            write(db, *args)
        except (sqlite3.OperationalError, MemoryError):
            raise  # the database itself is refusing: no part would fare better
        except Exception as exc:  # noqa: BLE001  (this part is left out; the rest is kept)
            db.execute("ROLLBACK TO part")
            skipped.append(f"{what}: {exc}")
        db.execute("RELEASE part")

    if snap.caller_name:
        part("name", _write_name, snap.call_id, customer_id, snap.caller_name, at)
    if snap.email and customer_id is not None:
        part("email", _write_email, customer_id, snap.email)
    if snap.order is not None:
        part("order", _write_order, snap.call_id, customer_id, snap.order, started, at)
    if snap.feedback is not None:
        part("feedback", _write_feedback, snap.call_id, customer_id, snap.feedback, at)
    if snap.facts and customer_id is not None:
        part("facts", _write_facts, snap.call_id, customer_id, snap.facts)
    if snap.staff_messages:
        part("staff messages", write_staff_messages, snap.call_id, customer_id, snap.staff_messages)
    numbered = list(enumerate(snap.messages, start=snap.first_seq))
    if careful:
        for seq, message in numbered:
            part(f"message {seq}", _write_messages, snap.call_id, [(seq, message)])
    else:
        _write_messages(db, snap.call_id, numbered)
    if snap.final:
        if snap.first_seq == 1:  # the complete transcript: drop rows the canonical history no longer has
            db.execute("DELETE FROM messages WHERE call_id = ? AND seq > ?", (snap.call_id, len(snap.messages)))
        db.execute(
            "UPDATE calls SET ended_at = coalesce(ended_at, ?), end_reason = coalesce(end_reason, ?) WHERE id = ?",
            (snap.ended_at, snap.end_reason, snap.call_id),
        )
        if customer_id is not None:
            db.execute(
                "UPDATE customers SET last_seen_at = max(last_seen_at, ?) WHERE id = ?", (snap.ended_at, customer_id)
            )
    write_service(db, snap)
    return skipped


# -- the restaurant's side of a call: outcome, transfer, ready time, messages for the staff ------------

# Each is written once known and never undone by an older snapshot (a late replay keeps what stands);
# a snapshot that changes none of them writes nothing. ``{ne}``: the backend's null-safe "differs".
_SERVICE_VALUES = (
    "restaurant_open = coalesce(restaurant_open, ?)",
    "outcome = coalesce(outcome, ?)",
    "transfer_reason = coalesce(?, transfer_reason)",
    "transfer_status = coalesce(?, transfer_status)",
)
SERVICE_SQL = (
    f"UPDATE calls SET {', '.join(_SERVICE_VALUES)} WHERE id = ? AND ("
    + " OR ".join(v.replace(" = ", " {ne} ", 1) for v in _SERVICE_VALUES)
    + ")"
)
# What a call used only grows: each counter is written where the snapshot's is higher, so a late replay of an
# older snapshot undoes nothing. ``{greatest}``: the backend's two-argument maximum.
USAGE_SQL = (
    "UPDATE calls SET "
    + ", ".join(f"{name} = {{greatest}}({name}, ?)" for name in USAGE_FIELDS)
    + " WHERE id = ? AND ("
    + " OR ".join(f"{name} < ?" for name in USAGE_FIELDS)
    + ")"
)
READY_SQL = "UPDATE orders SET ready_at = ? WHERE call_id = ? AND status = 'placed' AND ready_at IS NULL"
_STAFF_MESSAGE = columns(StaffMessage)


def write_service(db: sqlite3.Connection, snap: CallSnapshot) -> None:
    """The call's outcome (final snapshots only), whether we were open, its transfer, and its order's ready time."""
    opened = None if snap.restaurant_open is None else int(snap.restaurant_open)
    outcome = snap.outcome if snap.final else None
    changes = (opened, outcome, snap.transfer_reason, snap.transfer_status)
    db.execute(SERVICE_SQL.format(ne="IS NOT"), (*changes, snap.call_id, *changes))
    if any(usage := usage_values(snap)):
        db.execute(USAGE_SQL.format(greatest="max"), (*usage, snap.call_id, *usage))
    if snap.order is not None and snap.order.ready_at is not None:
        db.execute(READY_SQL, (snap.order.ready_at, snap.call_id))


def usage_values(snap: CallSnapshot) -> tuple[int, ...]:
    """The snapshot's usage counters, in ``USAGE_FIELDS`` order."""
    return tuple(getattr(snap, name) for name in USAGE_FIELDS)


def write_staff_messages(
    db: sqlite3.Connection, call_id: str, customer_id: int | None, messages: list[StaffMessage]
) -> None:
    """The messages a call took, by their place in the call: a message once taken stands."""
    db.executemany(
        f"INSERT INTO staff_messages (call_id, customer_id, position, {', '.join(_STAFF_MESSAGE)})"
        f" VALUES (?, ?, ?{', ?' * len(_STAFF_MESSAGE)}) ON CONFLICT (call_id, position) DO NOTHING",
        [(call_id, customer_id, n, *values(m)) for n, m in enumerate(messages, start=1)],
    )


def _upsert_customer(db: sqlite3.Connection, identity: str, household: str, seen_at: str) -> int:
    return int(
        db.execute(
            "INSERT INTO customers (participant_identity, household, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (participant_identity) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)"
            " RETURNING id",
            (identity, household, seen_at, seen_at),
        ).fetchone()[0]
    )


def _link(db: sqlite3.Connection, call_id: str, customer_id: int) -> None:
    """A call that began before its caller was known (an unverified caller) joins their profile."""
    linked = "UPDATE {} SET customer_id = ? WHERE {} = ? AND customer_id IS NULL"
    db.execute(linked.format("calls", "id"), (customer_id, call_id))
    db.execute("UPDATE customers SET call_count = call_count + 1 WHERE id = ?", (customer_id,))
    db.execute(linked.format("feedback", "call_id"), (customer_id, call_id))
    order = db.execute(
        linked.format("orders", "call_id") + " RETURNING id, status, total_cents", (customer_id, call_id)
    ).fetchone()
    if order is not None and order[1] == "placed":
        _count_placed(db, customer_id, order[0], order[2])


# What a call writes about its customer stands unless a newer call of theirs has begun since
# (a call replayed late from the spool must not undo what the caller told us after it).
_NOT_SUPERSEDED = " WHERE id = ? AND last_seen_at <= ?"


def _write_name(db: sqlite3.Connection, call_id: str, customer_id: int | None, name: str, at: str) -> None:
    db.execute("UPDATE calls SET caller_name = ? WHERE id = ?", (name, call_id))
    if customer_id is not None:
        db.execute("UPDATE customers SET name = ?" + _NOT_SUPERSEDED, (name, customer_id, at))


def _write_email(db: sqlite3.Connection, customer_id: int, email: str) -> None:
    db.execute("UPDATE customers SET email = ? WHERE id = ?", (email, customer_id))


def _write_order(
    db: sqlite3.Connection, call_id: str, customer_id: int | None, order: Order, created_at: str, at: str
) -> None:
    """The order as it is at time ``at``; a new row is dated ``created_at``; a placed order is final."""
    existing = db.execute("SELECT id, status FROM orders WHERE call_id = ?", (call_id,)).fetchone()
    if existing is not None and existing[1] == "placed":
        return
    if existing is None and not order.items:
        return
    order_id = int(
        db.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
            " payment_method, kitchen_note, created_at, updated_at, placed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id) DO UPDATE SET status = excluded.status,"
            " customer_id = coalesce(orders.customer_id, excluded.customer_id),"
            " subtotal_cents = excluded.subtotal_cents, tip_cents = excluded.tip_cents,"
            " total_cents = excluded.total_cents, payment_method = excluded.payment_method,"
            " kitchen_note = excluded.kitchen_note,"
            " updated_at = excluded.updated_at, placed_at = excluded.placed_at RETURNING id",
            (
                call_id,
                customer_id,
                order.status,
                order.subtotal_cents,
                order.tip_cents,
                order.total_cents,
                order.payment_method,
                order.kitchen_note,
                created_at,
                at,
                at if order.status == "placed" else None,
            ),
        ).fetchone()[0]
    )
    if existing is not None:
        db.execute("DELETE FROM order_items WHERE order_id = ?", (order_id,))
    db.executemany(_INSERT_LINE, [(order_id, n, *values(line)) for n, line in enumerate(order.items, start=1)])
    if order.status == "placed":  # queued for the till in the transaction that places it
        db.execute(outbox.ENQUEUE_SQL, (order_id, outbox.idempotency_key(order_id, call_id), at))
    if order.status == "placed" and customer_id is not None:
        _count_placed(db, customer_id, order_id, order.total_cents)


def _count_placed(db: sqlite3.Connection, customer_id: int, order_id: int, total_cents: int) -> None:
    """Keep the customer's aggregates, so the caller lookup never scans their history."""
    # A call replayed late from the spool must not displace a newer last order.
    db.execute(
        "UPDATE customers SET order_count = order_count + 1, lifetime_spend_cents = lifetime_spend_cents + ?,"
        " last_order_id = CASE WHEN last_order_id IS NULL"
        "   OR (SELECT created_at FROM orders WHERE id = last_order_id)"
        "      <= (SELECT created_at FROM orders WHERE id = ?) THEN ? ELSE last_order_id END"
        " WHERE id = ?",
        (total_cents, order_id, order_id, customer_id),
    )
    db.execute(f"UPDATE customers SET usual_order_id = {USUAL_ORDER_SQL} WHERE id = ?", (customer_id,))


def _write_facts(db: sqlite3.Connection, call_id: str, customer_id: int, facts: list[CallerFact]) -> None:
    """The call's word on each topic supersedes what was said before it; what was said after it stands."""
    for fact in facts:
        own = db.execute(
            "INSERT INTO caller_facts (customer_id, call_id, kind, topic, value, stated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id, kind, topic) DO UPDATE SET value = excluded.value, stated_at = excluded.stated_at,"
            " customer_id = excluded.customer_id RETURNING id",
            (customer_id, call_id, fact.kind, fact.topic, fact.value, fact.stated_at),
        ).fetchone()[0]
        same = " WHERE customer_id = ? AND kind = ? AND topic = ? AND id != ?"
        key = (customer_id, fact.kind, fact.topic, own)
        db.execute(
            "UPDATE caller_facts SET superseded_at = ?" + same + " AND superseded_at IS NULL AND stated_at <= ?",
            (fact.stated_at, *key, fact.stated_at),
        )
        db.execute(  # a later statement, written first (a replay from the spool), stands
            "UPDATE caller_facts SET superseded_at ="
            " (SELECT min(stated_at) FROM caller_facts" + same + " AND stated_at > ?) WHERE id = ?",
            (*key, fact.stated_at, own),
        )


def _write_feedback(db: sqlite3.Connection, call_id: str, customer_id: int | None, feedback: Feedback, at: str) -> None:
    db.execute(
        "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (call_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment,"
        " customer_id = coalesce(feedback.customer_id, excluded.customer_id)",
        (call_id, customer_id, feedback.rating, feedback.comment, at),
    )
    if customer_id is not None:
        db.execute(
            "UPDATE customers SET last_rating = ?, last_feedback_comment = ?" + _NOT_SUPERSEDED,
            (feedback.rating, feedback.comment, customer_id, at),
        )


def _write_messages(db: sqlite3.Connection, call_id: str, numbered: Iterable[tuple[int, Message]]) -> None:
    db.executemany(
        "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (call_id, seq) DO UPDATE SET role = excluded.role, agent = excluded.agent,"
        " content = excluded.content, created_at = excluded.created_at"
        " WHERE messages.content IS NOT excluded.content OR messages.role IS NOT excluded.role",
        [(call_id, seq, m.role, m.agent, m.content, m.created_at) for seq, m in numbered],
    )


# -- closing calls left by dead processes ---------------------------------------------------------


def close_calls(db: sqlite3.Connection, found: list[stale.StaleCall], spool_file: Path, now: str) -> list[str]:
    """Close the stale calls that are not waiting in the spool to be replayed."""
    # Read under the write lock: a replay commits before it forgets a spooled call.
    spooled = spool.call_ids(spool_file)
    closed = []
    for call in found:
        if call.call_id in spooled:
            continue
        if db.execute(
            "UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
            (call.ended_at, call.reason, call.call_id),
        ).rowcount:
            closed.append(call.call_id)
            db.execute(
                "UPDATE orders SET status = 'abandoned', updated_at = ? WHERE call_id = ? AND status = 'in_progress'",
                (now, call.call_id),
            )
    return closed
