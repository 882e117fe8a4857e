"""A caller's personal data on PostgreSQL: erased, handed over, and not kept past its time.

The same choices and counts as ``db.privacy`` (which profiles a request names, what goes with them,
what an access request shows); only the SQL is PostgreSQL's. Each function runs in the transaction
the repository opened; after an erasure the repository vacuums the tables, so the deleted rows'
space is reclaimed at once rather than at the next autovacuum.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.rows import dict_row

from db.models import name_key
from db.pg.calls import Conn

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


_CALLS = "SELECT id FROM calls WHERE customer_id = ANY(%(ids)s)"
_SCOPES = {
    "customers": "id = ANY(%(ids)s)",
    "calls": "customer_id = ANY(%(ids)s)",
    "orders": f"customer_id = ANY(%(ids)s) OR call_id IN ({_CALLS})",
    "order_items": f"order_id IN (SELECT id FROM orders WHERE customer_id = ANY(%(ids)s) OR call_id IN ({_CALLS}))",
    "feedback": f"customer_id = ANY(%(ids)s) OR call_id IN ({_CALLS})",
    "messages": f"call_id IN ({_CALLS})",
    "caller_facts": f"customer_id = ANY(%(ids)s) OR call_id IN ({_CALLS})",
    "staff_messages": f"customer_id = ANY(%(ids)s) OR call_id IN ({_CALLS})",
}


async def forget(
    db: Conn, identity: str, name: str | None, exact: bool, dry_run: bool, subject: str, now: str
) -> dict[str, Any]:
    """Delete the profiles (and all that is theirs); returns the counts and the profiles' keys and names."""
    profiles = await select_profiles(db, identity, name, exact)
    args = {"ids": [p[0] for p in profiles]}
    counts: dict[str, int] = {}
    for table, where in _SCOPES.items():
        cur = await db.execute(f"SELECT count(*) FROM {table} WHERE {where}", args)
        row = await cur.fetchone()
        counts[table] = int(row[0]) if row else 0
    if not dry_run and args["ids"]:
        await db.execute(
            "UPDATE customers SET last_order_id = NULL, usual_order_id = NULL WHERE id = ANY(%(ids)s)", args
        )
        for table in ERASED:
            await db.execute(f"DELETE FROM {table} WHERE {_SCOPES[table]}", args)
        await db.execute(
            "INSERT INTO erasures (erased_at, subject, counts) VALUES (%s, %s, %s)",
            (now, subject, json.dumps(counts, sort_keys=True)),
        )
    return {"counts": counts, "keys": [p[2] for p in profiles], "names": [p[1] for p in profiles if p[1]]}


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
        for call in calls:
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
            feedback = await all_rows(
                "SELECT rating, comment, created_at FROM feedback WHERE call_id = %s", (call["id"],)
            )
            call["feedback"] = feedback[0] if feedback else None
            call["transcript"] = await all_rows(
                "SELECT seq, role, agent, content, created_at FROM messages WHERE call_id = %s ORDER BY seq",
                (call["id"],),
            )
        profile["calls"] = calls
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
    return {"identity": identity, "profiles": profiles}
