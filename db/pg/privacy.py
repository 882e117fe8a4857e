"""A caller's personal data on PostgreSQL: erased, handed over, and not kept past its time.

The same choices and counts as ``db.privacy`` (which profiles a request names, what goes with them,
what an access request shows); only the SQL is PostgreSQL's. Each function runs in the transaction
the repository opened; after an erasure the repository vacuums the tables, so the deleted rows'
space is reclaimed at once rather than at the next autovacuum.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from db.models import name_key
from db.pg.lookup import Conn
from db.privacy import audit_counts
from db.statements.plan import NUMBER_LOCK

# Every table that holds a caller's rows, in an order that deletes children first.
ERASED = ("staff_messages", "caller_facts", "messages", "order_items", "feedback", "orders", "calls", "customers")


async def select_profiles(db: Conn, identity: str, name: str | None, exact: bool) -> list[tuple[int, str | None, str]]:
    """See ``db.privacy.select_profiles``."""
    where = "participant_identity = %(key)s" if exact else "household = %(key)s OR participant_identity = %(key)s"
    cur = await db.execute(f"SELECT id, name, participant_identity FROM customers WHERE {where}", {"key": identity})
    found = await cur.fetchall()
    if name is not None:
        wanted = name_key(name)
        found = [row for row in found if name_key(row[1]) == wanted]
    return [(int(row[0]), row[1], str(row[2])) for row in found]


_CALLS = "SELECT id FROM calls WHERE customer_id = ANY(%(ids)s) OR caller_number = %(number)s"
_THEIRS = f"customer_id = ANY(%(ids)s) OR call_id IN ({_CALLS})"
_SCOPES = {
    "customers": "id = ANY(%(ids)s)",
    "calls": "customer_id = ANY(%(ids)s) OR caller_number = %(number)s",
    "orders": _THEIRS,
    "order_items": f"order_id IN (SELECT id FROM orders WHERE {_THEIRS})",
    "feedback": _THEIRS,
    "messages": f"call_id IN ({_CALLS})",
    "caller_facts": _THEIRS,
    "staff_messages": _THEIRS,
}


async def forget(
    db: Conn,
    identity: str,
    name: str | None,
    exact: bool,
    dry_run: bool,
    subject: Callable[[str], str],
    now: str,
    on_call: bool = False,
) -> dict[str, Any]:
    """See ``db.privacy.forget``: the same choices, counts and audit rows.

    The erasure first takes the locks of the numbers it erases on alone: a write of a call from one of
    them either committed before (and is erased now) or waits, then sees the erasure and writes nothing.
    """
    where = "participant_identity = %(key)s" if exact else "household = %(key)s OR participant_identity = %(key)s"
    cur = await db.execute(f"SELECT DISTINCT household FROM customers WHERE {where}", {"key": identity})
    numbers = sorted({identity, *(str(row[0]) for row in await cur.fetchall() if row[0] is not None)})
    for number in numbers:  # in one order, so two erasures never wait for each other
        await db.execute(f"SELECT pg_advisory_xact_lock({NUMBER_LOCK}, hashtext(%s))", (number,))
    profiles = await select_profiles(db, identity, name, exact)
    parts: list[tuple[str, list[int], str | None]]  # whose key, their profiles, the number whose calls go too
    if name is not None:
        parts = [(key, [customer_id], None) for customer_id, _, key in profiles]
    else:
        parts = [(identity, [p[0] for p in profiles], None if exact else identity)]
    total = dict.fromkeys(_SCOPES, 0)
    for key, ids, erased_number in parts:
        counts = await _erase(db, {"ids": ids, "number": erased_number}, dry_run)
        if not dry_run:
            await db.execute(
                "INSERT INTO erasures (erased_at, subject, counts, scope) VALUES (%s, %s, %s, %s)",
                (
                    now,
                    subject(key),
                    audit_counts(counts, on_call),
                    "profile" if erased_number is None else "number",
                ),
            )
        for table, count in counts.items():
            total[table] += count
    return {"counts": total, "keys": [p[2] for p in profiles], "names": [p[1] for p in profiles if p[1]]}


async def _erase(db: Conn, args: dict[str, Any], dry_run: bool) -> dict[str, int]:
    """Count, and unless ``dry_run`` delete, the rows of the profiles ``ids`` and of the calls from ``number``."""
    counts: dict[str, int] = {}
    for table, where in _SCOPES.items():
        cur = await db.execute(f"SELECT count(*) FROM {table} WHERE {where}", args)
        row = await cur.fetchone()
        counts[table] = int(row[0]) if row else 0
    if not dry_run and any(counts.values()):
        await db.execute(
            "UPDATE customers SET last_order_id = NULL, usual_order_id = NULL WHERE id = ANY(%(ids)s)", args
        )
        for table in ERASED:
            await db.execute(f"DELETE FROM {table} WHERE {_SCOPES[table]}", args)
    return counts


# How long the rewrite of one table may wait for its lock (a long report holding the table): past it,
# the table is cleaned online instead (see ``clean_after_erasure``).
REWRITE_LOCK_TIMEOUT = "5s"


async def clean_after_erasure(conn: Conn, tables: Sequence[str], *, online: bool = False) -> bool:
    """Leave no erased byte in the tables' pages or their indexes (on an autocommit connection); False
    if some table could only be cleaned online, its freed heap space keeping the bytes until reused.

    ``DELETE`` only marks rows dead, and ``VACUUM`` frees their space without overwriting it; a GIN
    index never drops an entry (a lexeme stays though no row has it), and a b-tree keeps a removed
    entry's bytes in its page's free space; the planner's statistics sample column values. So each
    table is rewritten with its indexes into new files (``VACUUM FULL``; the old files are removed),
    which locks the table for that time, and its statistics sampled again from the rows that remain. A table whose
    lock is not granted within ``REWRITE_LOCK_TIMEOUT`` is vacuumed and its indexes rebuilt without
    blocking anyone (``REINDEX ... CONCURRENTLY``) instead; with ``online``, every table is (the rewrite
    would hold up the writes of the calls running meanwhile for seconds on a large table).
    """
    rewritten = True
    for table in tables:
        if online:
            await _clean_online(conn, table)
            rewritten = False
            continue
        try:
            await conn.execute(f"SET lock_timeout = '{REWRITE_LOCK_TIMEOUT}'")
            await conn.execute(f"VACUUM (FULL, ANALYZE) {table}")
        except pg_errors.LockNotAvailable:
            rewritten = False
            await conn.execute("RESET lock_timeout")
            await _clean_online(conn, table)
        finally:
            await conn.execute("RESET lock_timeout")
    return rewritten


async def _clean_online(conn: Conn, table: str) -> None:
    """Free the table's dead rows and rebuild its indexes, blocking no one."""
    await conn.execute(f"VACUUM (ANALYZE) {table}")
    await conn.execute(f"REINDEX TABLE CONCURRENTLY {table}")


async def purge(db: Conn, cutoff: str, batch: int) -> dict[str, int]:
    """See ``db.privacy.purge``."""
    cur = await db.execute(
        "SELECT id FROM calls WHERE coalesce(ended_at, started_at) < %s"
        " AND id IN (SELECT call_id FROM messages) LIMIT %s",
        (cutoff, batch),
    )
    chosen = [row[0] for row in await cur.fetchall()]
    cur = await db.execute("DELETE FROM messages WHERE call_id = ANY(%s)", (chosen,))
    messages = cur.rowcount
    cur = await db.execute("UPDATE feedback SET comment = '' WHERE created_at < %s AND comment != ''", (cutoff,))
    comments = cur.rowcount
    await db.execute(
        "UPDATE customers SET last_feedback_comment = NULL WHERE last_feedback_comment IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM feedback AS f WHERE f.customer_id = customers.id"
        " AND f.created_at >= %s AND f.comment != '')",
        (cutoff,),
    )
    return {"calls": len(chosen), "messages": messages, "comments": comments}


async def export_caller(db: Conn, identity: str) -> dict[str, Any]:
    """See ``db.privacy.export_caller``: the same document."""

    async def all_rows(sql: str, args: tuple[object, ...]) -> list[dict[str, Any]]:
        async with db.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())

    profiles = await all_rows(
        "SELECT * FROM customers WHERE household = %s OR participant_identity = %s ORDER BY id", (identity, identity)
    )
    for profile in profiles:
        profile.pop("label", None)
        calls = await all_rows("SELECT * FROM calls WHERE customer_id = %s ORDER BY started_at", (profile["id"],))
        profile["calls"] = [await _held_call(all_rows, call) for call in calls]
        profile["facts"] = await all_rows(
            "SELECT kind, topic, value, stated_at, superseded_at, call_id FROM caller_facts"
            " WHERE customer_id = %s ORDER BY kind, stated_at",
            (profile["id"],),
        )
        profile["staff_messages"] = await all_rows(
            "SELECT request, callback_number, reason, created_at, call_id FROM staff_messages"
            " WHERE customer_id = %s ORDER BY created_at, id",
            (profile["id"],),
        )
    unnamed = await all_rows(
        "SELECT * FROM calls WHERE caller_number = %s AND customer_id IS NULL ORDER BY started_at", (identity,)
    )
    return {
        "identity": identity,
        "profiles": profiles,
        "calls_without_profile": [await _held_call(all_rows, call) for call in unnamed],
    }


async def _held_call(
    all_rows: Callable[[str, tuple[object, ...]], Awaitable[list[dict[str, Any]]]], call: dict[str, Any]
) -> dict[str, Any]:
    """See ``db.privacy._held_call``."""
    for key in ("owner_host", "owner_pid", "owner_started"):
        call.pop(key, None)
    order = await all_rows("SELECT * FROM orders WHERE call_id = %s", (call["id"],))
    if order:
        call["order"] = order[0]
        call["order"]["items"] = await all_rows(
            "SELECT position, menu_item, name, quantity, unit_price_cents, modifications, accepted_allergens"
            " FROM order_items WHERE order_id = %s ORDER BY position",
            (order[0]["id"],),
        )
        for item in call["order"]["items"]:
            item["modifications"] = json.loads(item["modifications"])
            item["accepted_allergens"] = json.loads(item["accepted_allergens"])
    feedback = await all_rows("SELECT rating, comment, created_at FROM feedback WHERE call_id = %s", (call["id"],))
    call["feedback"] = feedback[0] if feedback else None
    call["transcript"] = await all_rows(
        "SELECT seq, role, agent, content, created_at FROM messages WHERE call_id = %s ORDER BY seq", (call["id"],)
    )
    return call
