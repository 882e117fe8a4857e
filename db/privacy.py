"""A caller's personal data: erased on request, handed over on request, and not kept past its time.

The functions taking a ``sqlite3.Connection`` run on the writer thread inside one transaction.
Deleted content leaves no trace inside the file: the writer runs with ``secure_delete`` (freed
pages are zeroed), the full-text indexes are merged afterwards (so no token of the deleted rows
stays in their shadow tables), and the caller of these functions empties the write-ahead log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from db.models import CallSnapshot, name_key

TABLES = ("customers", "calls", "orders", "order_items", "feedback", "messages", "caller_facts", "staff_messages")
_FTS = ("messages_fts", "feedback_fts")


def select_profiles(
    db: sqlite3.Connection, identity: str, name: str | None, exact: bool = False
) -> list[tuple[int, str | None, str]]:
    """The profiles a request names: every profile on a number (or identity), the one person ``name``
    of them, or (``exact``) the one profile keyed ``identity``."""
    where = "participant_identity = ?" if exact else "household = ? OR participant_identity = ?"
    found = db.execute(
        f"SELECT id, name, participant_identity FROM customers WHERE {where}", (identity,) * where.count("?")
    ).fetchall()
    if name is not None:
        wanted = name_key(name)
        found = [row for row in found if name_key(row[1]) == wanted]
    return [(int(row[0]), row[1], str(row[2])) for row in found]


def forget(
    db: sqlite3.Connection, identity: str, name: str | None, exact: bool, dry_run: bool, subject: str, now: str
) -> dict[str, Any]:
    """Delete the profiles (and all that is theirs); returns the counts and the profiles' keys and names."""
    profiles = select_profiles(db, identity, name, exact)
    ids = [p[0] for p in profiles]
    marks = ", ".join("?" * len(ids)) or "NULL"
    calls = f"SELECT id FROM calls WHERE customer_id IN ({marks})"
    orders = f"SELECT id FROM orders WHERE customer_id IN ({marks}) OR call_id IN ({calls})"
    scopes = {
        "customers": (f"id IN ({marks})", ids),
        "calls": (f"customer_id IN ({marks})", ids),
        "orders": (f"customer_id IN ({marks}) OR call_id IN ({calls})", ids * 2),
        "order_items": (f"order_id IN ({orders})", ids * 2),
        "feedback": (f"customer_id IN ({marks}) OR call_id IN ({calls})", ids * 2),
        "messages": (f"call_id IN ({calls})", ids),
        "caller_facts": (f"customer_id IN ({marks}) OR call_id IN ({calls})", ids * 2),
        "staff_messages": (f"customer_id IN ({marks}) OR call_id IN ({calls})", ids * 2),
    }
    counts = {
        table: db.execute(f"SELECT count(*) FROM {table} WHERE {where}", args).fetchone()[0]
        for table, (where, args) in scopes.items()
    }
    if not dry_run and ids:
        db.execute(f"UPDATE customers SET last_order_id = NULL, usual_order_id = NULL WHERE id IN ({marks})", ids)
        for table in (
            "staff_messages",
            "caller_facts",
            "messages",
            "order_items",
            "feedback",
            "orders",
            "calls",
            "customers",
        ):
            where, args = scopes[table]
            db.execute(f"DELETE FROM {table} WHERE {where}", args)
        merge_search_indexes(db)
        db.execute(
            "INSERT INTO erasures (erased_at, subject, counts) VALUES (?, ?, ?)",
            (now, subject, json.dumps(counts, sort_keys=True)),
        )
    return {"counts": counts, "keys": [p[2] for p in profiles], "names": [p[1] for p in profiles if p[1]]}


def purge(db: sqlite3.Connection, cutoff: str, batch: int) -> dict[str, int]:
    """Remove up to ``batch`` calls' transcripts, and the free-text comments, older than ``cutoff``."""
    old_calls = "SELECT id FROM calls WHERE coalesce(ended_at, started_at) < ? AND id IN (SELECT call_id FROM messages)"
    chosen = [row[0] for row in db.execute(old_calls + " LIMIT ?", (cutoff, batch))]
    marks = ", ".join("?" * len(chosen)) or "NULL"
    messages = db.execute(f"DELETE FROM messages WHERE call_id IN ({marks})", chosen).rowcount
    comments = db.execute("UPDATE feedback SET comment = '' WHERE created_at < ? AND comment != ''", (cutoff,)).rowcount
    db.execute(
        "UPDATE customers SET last_feedback_comment = NULL WHERE last_feedback_comment IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM feedback AS f WHERE f.customer_id = customers.id"
        " AND f.created_at >= ? AND f.comment != '')",
        (cutoff,),
    )
    if messages or comments:
        merge_search_indexes(db)
    return {"calls": len(chosen), "messages": messages, "comments": comments}


def merge_search_indexes(db: sqlite3.Connection) -> None:
    """Rewrite the full-text indexes so that deleted rows leave no token behind."""
    for table in _FTS:
        db.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")


def export_caller(db: sqlite3.Connection, identity: str) -> dict[str, Any]:
    """Everything held about the profiles on a number (or identity), as plain data."""
    db.row_factory = sqlite3.Row

    def all_rows(sql: str, args: tuple[object, ...]) -> list[dict[str, Any]]:
        return [dict(row) for row in db.execute(sql, args)]

    profiles = all_rows(
        "SELECT * FROM customers WHERE household = ? OR participant_identity = ? ORDER BY id", (identity, identity)
    )
    for profile in profiles:
        profile.pop("label", None)
        calls = all_rows("SELECT * FROM calls WHERE customer_id = ? ORDER BY started_at", (profile["id"],))
        for call in calls:
            for key in ("owner_host", "owner_pid", "owner_started"):
                call.pop(key, None)
            order = all_rows("SELECT * FROM orders WHERE call_id = ?", (call["id"],))
            if order:
                call["order"] = order[0]
                call["order"]["items"] = all_rows(
                    "SELECT position, menu_item, name, quantity, unit_price_cents, modifications, accepted_allergens"
                    " FROM order_items WHERE order_id = ? ORDER BY position",
                    (order[0]["id"],),
                )
                for item in call["order"]["items"]:
                    item["modifications"] = json.loads(item["modifications"])
                    item["accepted_allergens"] = json.loads(item["accepted_allergens"])
            feedback = all_rows("SELECT rating, comment, created_at FROM feedback WHERE call_id = ?", (call["id"],))
            call["feedback"] = feedback[0] if feedback else None
            call["transcript"] = all_rows(
                "SELECT seq, role, agent, content, created_at FROM messages WHERE call_id = ? ORDER BY seq",
                (call["id"],),
            )
        profile["calls"] = calls
        profile["facts"] = all_rows(
            "SELECT kind, topic, value, stated_at, superseded_at, call_id FROM caller_facts"
            " WHERE customer_id = ? ORDER BY kind, stated_at",
            (profile["id"],),
        )
        profile["staff_messages"] = all_rows(
            "SELECT request, callback_number, reason, created_at, call_id FROM staff_messages"
            " WHERE customer_id = ? ORDER BY created_at, id",
            (profile["id"],),
        )
    return {"identity": identity, "profiles": profiles}


# A spooled call whose caller was erased after it began, and whose profile is gone: replaying it would
# bring them back. (Another person of the household, still on file, keeps their calls.)
ERASED_SINCE_SQL = """
SELECT count(*) FROM erasures
WHERE subject IN ({subjects}) AND erased_at >= ?
  AND NOT EXISTS (SELECT 1 FROM customers WHERE participant_identity = ?)
"""


def erased_since_query(key_file: Path, snap: CallSnapshot) -> tuple[str, list[object]] | None:
    """The statement (``?`` placeholders) that counts erasures of ``snap``'s caller since it began;
    None when none can apply (no key yet means no erasure ever; an anonymous call with no number)."""
    keys = sorted({key for key in (snap.identity, snap.household) if key})
    if not keys or not key_file.exists():
        return None
    subjects = [subject_hash(key_file, key) for key in keys]
    sql = ERASED_SINCE_SQL.format(subjects=", ".join("?" * len(subjects)))
    return sql, [*subjects, snap.started_at or "", snap.identity or ""]


def subject_hash(key_file: Path, identity: str) -> str:
    """A keyed hash of an identity for the audit trail: the same caller gives the same hash, no one can reverse it."""
    return hmac.new(_audit_key(key_file), identity.encode("utf-8"), hashlib.sha256).hexdigest()


def _audit_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
