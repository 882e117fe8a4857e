"""Writing a call's snapshot to PostgreSQL: ``db.calls.write_call``'s semantics, statement for statement.

The functions run inside one transaction the repository opened (``db.pg.repository``), pipelined
unless ``careful``: only the statements whose answer decides what comes next wait for it (each
``_one``), so a finished call costs a few round trips, not one per statement. A part written
``careful``-ly runs in a SAVEPOINT of its own, so one bad row never loses the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg

from db import outbox, spool, stale
from db.calls import READY_SQL, SERVICE_SQL, USAGE_SQL, usage_values
from db.errors import CallerErased
from db.models import (
    CallerFact,
    CallSnapshot,
    Feedback,
    Message,
    Order,
    OrderLine,
    StaffMessage,
    columns,
    values,
)
from db.pg.queries import qmark
from db.pg.schema import USUAL_ORDER_SQL
from db.privacy import AuditKey, erased_since_query

Conn = psycopg.AsyncConnection[Any]

# With a hash of the number, the key of the advisory lock that an erasure takes alone and the calls
# from that number share (two keys: apart from the migration's one-key lock).
NUMBER_LOCK = 0x4D454D41

_LINE = columns(OrderLine)
_INSERT_LINE = f"INSERT INTO order_items (order_id, position, {', '.join(_LINE)}) VALUES (%s, %s{', %s' * len(_LINE)})"


async def _one(db: Conn, sql: str, params: Iterable[object]) -> tuple[Any, ...] | None:
    cur = await db.execute(sql, tuple(params))
    return await cur.fetchone()


async def write_call(
    db: Conn, snap: CallSnapshot, now: str, careful: bool, audit_key: AuditKey | None = None
) -> list[str]:
    """Write what ``snap`` holds; returns the parts left out (``careful`` only). See ``db.calls.write_call``.

    Raises ``CallerErased``, writing nothing, if the caller was erased since the call began: the number's
    lock (shared by its calls, taken alone by an erasure) makes an erasure either seen here or made after
    this write commits, and erase what it wrote.
    """
    started = snap.started_at or snap.ended_at or now
    number = snap.household or snap.identity
    erased = None
    if number is not None:
        await db.execute(f"SELECT pg_advisory_xact_lock_shared({NUMBER_LOCK}, hashtext(%s))", (number,))
        query = None if audit_key is None else erased_since_query(audit_key, snap)
        if query is not None:
            erased = await db.execute(qmark(query[0]), tuple(query[1]))
    # The customer's row updated and the call's locked, in this order, both sent before either answer is read.
    identity = snap.identity
    touched = None if identity is None else await db.execute(_TOUCH_CUSTOMER, (started, identity))
    call = await db.execute("SELECT ended_at, customer_id FROM calls WHERE id = %s FOR UPDATE", (snap.call_id,))
    customer_id = None
    if identity is not None and touched is not None:
        customer_id = await _customer_id(db, touched, identity, snap.household or identity, started)
    if erased is not None and (found := await erased.fetchone()) is not None and found[0]:
        raise CallerErased(f"call {snap.call_id}: its caller was erased after it began")
    existing = await call.fetchone()
    new_call = False
    if existing is None:
        inserted = await _one(
            db,
            "INSERT INTO calls (id, customer_id, started_at, caller_number, owner_host, owner_pid, owner_started)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
            (snap.call_id, customer_id, started, number, snap.owner_host, snap.owner_pid, snap.owner_started),
        )
        if inserted is None:  # another host's write of this call committed first: take its row
            existing = await _one(
                db, "SELECT ended_at, customer_id FROM calls WHERE id = %s FOR UPDATE", (snap.call_id,)
            )
        else:
            new_call = True
            if customer_id is not None:
                await db.execute("UPDATE customers SET call_count = call_count + 1 WHERE id = %s", (customer_id,))
    if existing is not None:
        if existing[0] is not None and not snap.final:
            # Closed by another host (its heartbeat looked dead), yet the call goes on: a placed order stands.
            if snap.order is not None and snap.order.status == "placed":
                await _write_order(db, snap.call_id, existing[1], snap.order, started, now, False)
            return []
        if existing[1] is None and customer_id is not None:
            await _link(db, snap.call_id, customer_id)
    at = snap.ended_at or now
    skipped: list[str] = []

    async def part(what: str, write: Callable[..., Awaitable[None]], *args: object) -> None:
        if not careful:
            await write(db, *args)
            return
        try:
            async with db.transaction():  # a SAVEPOINT
                await write(db, *args)
        except (psycopg.OperationalError, psycopg.InterfaceError, MemoryError):
            raise  # the database itself is refusing: no part would fare better
        except Exception as exc:  # noqa: BLE001  (this part is left out; the rest is kept)
            skipped.append(f"{what}: {describe(exc)}")

    if snap.caller_name:
        await part("name", _write_name, snap.call_id, customer_id, snap.caller_name, at)
    if snap.email and customer_id is not None:
        await part("email", _write_email, customer_id, snap.email)
    if snap.order is not None:
        await part("order", _write_order, snap.call_id, customer_id, snap.order, started, at, new_call)
    if snap.feedback is not None:
        await part("feedback", _write_feedback, snap.call_id, customer_id, snap.feedback, at)
    if snap.facts and customer_id is not None:
        await part("facts", _write_facts, snap.call_id, customer_id, snap.facts)
    if snap.staff_messages:
        await part("staff messages", write_staff_messages, snap.call_id, customer_id, snap.staff_messages)
    numbered = list(enumerate(snap.messages, start=snap.first_seq))
    if careful:
        for seq, message in numbered:
            await part(f"message {seq}", _write_messages, snap.call_id, [(seq, message)])
    else:
        await _write_messages(db, snap.call_id, numbered)
    if snap.final:
        if snap.first_seq == 1:  # the complete transcript: drop rows the canonical history no longer has
            await db.execute("DELETE FROM messages WHERE call_id = %s AND seq > %s", (snap.call_id, len(snap.messages)))
        await db.execute(
            "UPDATE calls SET ended_at = coalesce(ended_at, %s), end_reason = coalesce(end_reason, %s) WHERE id = %s",
            (snap.ended_at, snap.end_reason, snap.call_id),
        )
        if customer_id is not None:
            await db.execute(
                "UPDATE customers SET last_seen_at = greatest(last_seen_at, %s) WHERE id = %s",
                (snap.ended_at, customer_id),
            )
    await write_service(db, snap)
    return skipped


# -- the restaurant's side of a call (see db.calls.write_service) --------------------------------------

_STAFF_MESSAGE = columns(StaffMessage)


async def write_service(db: Conn, snap: CallSnapshot) -> None:
    """See ``db.calls.write_service``."""
    opened = None if snap.restaurant_open is None else int(snap.restaurant_open)
    outcome = snap.outcome if snap.final else None
    changes = (opened, outcome, snap.transfer_reason, snap.transfer_status)
    sql = SERVICE_SQL.format(ne="IS DISTINCT FROM").replace("?", "%s")
    await db.execute(sql, (*changes, snap.call_id, *changes))
    if any(usage := usage_values(snap)):
        await db.execute(USAGE_SQL.format(greatest="greatest").replace("?", "%s"), (*usage, snap.call_id, *usage))
    if snap.order is not None and snap.order.ready_at is not None:
        await db.execute(READY_SQL.replace("?", "%s"), (snap.order.ready_at, snap.call_id))


async def write_staff_messages(db: Conn, call_id: str, customer_id: int | None, messages: list[StaffMessage]) -> None:
    """See ``db.calls.write_staff_messages``."""
    async with db.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO staff_messages (call_id, customer_id, position, {', '.join(_STAFF_MESSAGE)})"
            f" VALUES (%s, %s, %s{', %s' * len(_STAFF_MESSAGE)}) ON CONFLICT (call_id, position) DO NOTHING",
            [(call_id, customer_id, n, *values(m)) for n, m in enumerate(messages, start=1)],
        )


def describe(exc: BaseException) -> str:
    """An error in a line without the values it quotes (they may be what a caller said)."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return f"{exc.diag.sqlstate or type(exc).__name__}: {exc.diag.message_primary}"
    return type(exc).__name__


# An update first: an INSERT ... ON CONFLICT would take a number from the sequence at every write.
_TOUCH_CUSTOMER = (
    "UPDATE customers SET last_seen_at = greatest(last_seen_at, %s) WHERE participant_identity = %s RETURNING id"
)


async def _customer_id(db: Conn, touched: psycopg.AsyncCursor[Any], identity: str, household: str, seen_at: str) -> int:
    """The id ``_TOUCH_CUSTOMER`` returned, or that of the customer inserted now."""
    row = await touched.fetchone()
    if row is None:
        row = await _one(
            db,
            "INSERT INTO customers (participant_identity, household, created_at, last_seen_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (participant_identity) DO UPDATE"
            " SET last_seen_at = greatest(customers.last_seen_at, excluded.last_seen_at) RETURNING id",
            (identity, household, seen_at, seen_at),
        )
    assert row is not None
    return int(row[0])


async def _link(db: Conn, call_id: str, customer_id: int) -> None:
    """A call that began before its caller was known (an unverified caller) joins their profile."""
    linked = "UPDATE {} SET customer_id = %s WHERE {} = %s AND customer_id IS NULL"
    await db.execute(linked.format("calls", "id"), (customer_id, call_id))
    await db.execute("UPDATE customers SET call_count = call_count + 1 WHERE id = %s", (customer_id,))
    await db.execute(linked.format("feedback", "call_id"), (customer_id, call_id))
    order = await _one(
        db, linked.format("orders", "call_id") + " RETURNING id, status, total_cents", (customer_id, call_id)
    )
    if order is not None and order[1] == "placed":
        await _count_placed(db, customer_id, order[0], order[2])


# What a call writes about its customer stands unless a newer call of theirs has begun since.
_NOT_SUPERSEDED = " WHERE id = %s AND last_seen_at <= %s"


async def _write_name(db: Conn, call_id: str, customer_id: int | None, name: str, at: str) -> None:
    await db.execute("UPDATE calls SET caller_name = %s WHERE id = %s", (name, call_id))
    if customer_id is not None:
        await db.execute("UPDATE customers SET name = %s" + _NOT_SUPERSEDED, (name, customer_id, at))


async def _write_email(db: Conn, customer_id: int, email: str) -> None:
    await db.execute("UPDATE customers SET email = %s WHERE id = %s", (email, customer_id))


async def _write_order(
    db: Conn, call_id: str, customer_id: int | None, order: Order, created_at: str, at: str, new_call: bool
) -> None:
    """The order as it is at time ``at``; a new row is dated ``created_at``; a placed order is final.

    ``new_call``: this transaction inserted the call, so no order of it can exist yet.
    """
    existing = None if new_call else await _one(db, "SELECT id, status FROM orders WHERE call_id = %s", (call_id,))
    if existing is not None and existing[1] == "placed":
        return
    if existing is None and not order.items:
        return
    fields = (
        order.status,
        order.subtotal_cents,
        order.tip_cents,
        order.total_cents,
        order.payment_method,
        order.kitchen_note,
        at,
        at if order.status == "placed" else None,
    )
    if existing is not None:
        row = await _one(
            db,
            "UPDATE orders SET status = %s, subtotal_cents = %s, tip_cents = %s, total_cents = %s,"
            " payment_method = %s, kitchen_note = %s, updated_at = %s, placed_at = %s,"
            " customer_id = coalesce(customer_id, %s) WHERE id = %s RETURNING id",
            (*fields, customer_id, existing[0]),
        )
    else:
        row = await _one(
            db,
            "INSERT INTO orders (status, subtotal_cents, tip_cents, total_cents, payment_method, kitchen_note,"
            " updated_at, placed_at, call_id, customer_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (call_id) DO UPDATE SET status = excluded.status,"
            " customer_id = coalesce(orders.customer_id, excluded.customer_id),"
            " subtotal_cents = excluded.subtotal_cents, tip_cents = excluded.tip_cents,"
            " total_cents = excluded.total_cents, payment_method = excluded.payment_method,"
            " kitchen_note = excluded.kitchen_note,"
            " updated_at = excluded.updated_at, placed_at = excluded.placed_at RETURNING id",
            (*fields, call_id, customer_id, created_at),
        )
    assert row is not None
    order_id = int(row[0])
    if existing is not None:
        await db.execute("DELETE FROM order_items WHERE order_id = %s", (order_id,))
    if order.items:
        async with db.cursor() as cur:
            await cur.executemany(
                _INSERT_LINE, [(order_id, n, *values(line)) for n, line in enumerate(order.items, start=1)]
            )
    if order.status == "placed":  # queued for the till in the transaction that places it
        key = outbox.idempotency_key(order_id, call_id)
        await db.execute(outbox.ENQUEUE_SQL.replace("?", "%s"), (order_id, key, at))
    if order.status == "placed" and customer_id is not None:
        await _count_placed(db, customer_id, order_id, order.total_cents)


async def _count_placed(db: Conn, customer_id: int, order_id: int, total_cents: int) -> None:
    """Keep the customer's aggregates, so the caller lookup never scans their history."""
    # A call replayed late from the spool must not displace a newer last order.
    await db.execute(
        "UPDATE customers SET order_count = order_count + 1, lifetime_spend_cents = lifetime_spend_cents + %s,"
        " last_order_id = CASE WHEN last_order_id IS NULL"
        "   OR (SELECT created_at FROM orders WHERE id = last_order_id)"
        "      <= (SELECT created_at FROM orders WHERE id = %s) THEN %s ELSE last_order_id END"
        " WHERE id = %s",
        (total_cents, order_id, order_id, customer_id),
    )
    await db.execute(f"UPDATE customers SET usual_order_id = {USUAL_ORDER_SQL} WHERE id = %s", (customer_id,))


async def _write_facts(db: Conn, call_id: str, customer_id: int, facts: list[CallerFact]) -> None:
    """The call's word on each topic supersedes what was said before it; what was said after it stands."""
    for fact in facts:
        row = await _one(
            db,
            "UPDATE caller_facts SET value = %s, stated_at = %s, customer_id = %s"
            " WHERE call_id = %s AND kind = %s AND topic = %s RETURNING id",
            (fact.value, fact.stated_at, customer_id, call_id, fact.kind, fact.topic),
        )
        if row is None:
            row = await _one(
                db,
                "INSERT INTO caller_facts (customer_id, call_id, kind, topic, value, stated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (call_id, kind, topic) DO UPDATE"
                " SET value = excluded.value, stated_at = excluded.stated_at, customer_id = excluded.customer_id"
                " RETURNING id",
                (customer_id, call_id, fact.kind, fact.topic, fact.value, fact.stated_at),
            )
        assert row is not None
        own = row[0]
        same = " WHERE customer_id = %s AND kind = %s AND topic = %s AND id != %s"
        key = (customer_id, fact.kind, fact.topic, own)
        await db.execute(
            "UPDATE caller_facts SET superseded_at = %s" + same + " AND superseded_at IS NULL AND stated_at <= %s",
            (fact.stated_at, *key, fact.stated_at),
        )
        await db.execute(  # a later statement, written first (a replay from the spool), stands
            "UPDATE caller_facts SET superseded_at ="
            " (SELECT min(stated_at) FROM caller_facts" + same + " AND stated_at > %s) WHERE id = %s",
            (*key, fact.stated_at, own),
        )


async def _write_feedback(db: Conn, call_id: str, customer_id: int | None, feedback: Feedback, at: str) -> None:
    # One statement, whose answer nothing waits for; an update first, as for the customer.
    await db.execute(
        "WITH updated AS (UPDATE feedback SET rating = %s, comment = %s, customer_id = coalesce(customer_id, %s)"
        "   WHERE call_id = %s RETURNING id)"
        " INSERT INTO feedback (call_id, customer_id, rating, comment, created_at)"
        " SELECT %s::text, %s::bigint, %s::bigint, %s::text, %s::text WHERE NOT EXISTS (SELECT FROM updated)"
        " ON CONFLICT (call_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment,"
        " customer_id = coalesce(feedback.customer_id, excluded.customer_id)",
        (
            feedback.rating,
            feedback.comment,
            customer_id,
            call_id,
            call_id,
            customer_id,
            feedback.rating,
            feedback.comment,
            at,
        ),
    )
    if customer_id is not None:
        await db.execute(
            "UPDATE customers SET last_rating = %s, last_feedback_comment = %s" + _NOT_SUPERSEDED,
            (feedback.rating, feedback.comment, customer_id, at),
        )


async def _write_messages(db: Conn, call_id: str, numbered: Iterable[tuple[int, Message]]) -> None:
    rows = [(call_id, seq, m.role, m.agent, m.content, m.created_at) for seq, m in numbered]
    if not rows:
        return
    async with db.cursor() as cur:
        await cur.executemany(
            "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (call_id, seq) DO UPDATE SET role = excluded.role, agent = excluded.agent,"
            " content = excluded.content, created_at = excluded.created_at"
            " WHERE messages.content IS DISTINCT FROM excluded.content OR messages.role IS DISTINCT FROM excluded.role",
            rows,
        )


async def close_calls(db: Conn, found: list[stale.StaleCall], spool_file: Path, now: str) -> list[str]:
    """Close the stale calls that are not waiting in this host's spool to be replayed."""
    spooled = spool.call_ids(spool_file)
    closed = []
    for call in found:
        if call.call_id in spooled:
            continue
        cur = await db.execute(
            "UPDATE calls SET ended_at = %s, end_reason = %s WHERE id = %s AND ended_at IS NULL",
            (call.ended_at, call.reason, call.call_id),
        )
        if cur.rowcount:
            closed.append(call.call_id)
            await db.execute(
                "UPDATE orders SET status = 'abandoned', updated_at = %s WHERE call_id = %s AND status = 'in_progress'",
                (now, call.call_id),
            )
    return closed
