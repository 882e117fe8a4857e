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
from collections.abc import Callable
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
    db: sqlite3.Connection,
    identity: str,
    name: str | None,
    exact: bool,
    dry_run: bool,
    subject: Callable[[str], str],
    now: str,
    on_call: bool = False,
) -> dict[str, Any]:
    """Delete the profiles (and all that is theirs); returns the counts and the profiles' keys and names.

    Without ``name`` or ``exact``, everything on the number goes, its calls where no name was given
    included. Each erasure leaves an audit row (``subject`` hashes the key), which calls still running
    read before they write (``ERASED_SINCE_SQL``): one for the number, or one per person erased. An
    erasure the caller asked for on a call (``on_call``) says so in its row (``audit_counts``): the
    call's outcome, which goes with the call, is still counted on the dashboard.
    """
    profiles = select_profiles(db, identity, name, exact)
    parts: list[tuple[str, list[int], str | None]]  # whose key, their profiles, the number whose calls go too
    if name is not None:
        parts = [(key, [customer_id], None) for customer_id, _, key in profiles]
    else:
        parts = [(identity, [p[0] for p in profiles], None if exact else identity)]
    total = dict.fromkeys(TABLES, 0)
    for key, ids, number in parts:
        counts = _erase(db, ids, number, dry_run)
        if not dry_run:
            db.execute(
                "INSERT INTO erasures (erased_at, subject, counts, scope) VALUES (?, ?, ?, ?)",
                (now, subject(key), audit_counts(counts, on_call), "profile" if number is None else "number"),
            )
        for table, count in counts.items():
            total[table] += count
    if not dry_run and any(total.values()):
        merge_search_indexes(db)
    return {"counts": total, "keys": [p[2] for p in profiles], "names": [p[1] for p in profiles if p[1]]}


# The key of an audit row's counts that marks an erasure a caller asked for on a call: the call ended
# in an erasure (its outcome "erased", deleted with it). Nothing personal: a flag beside the counts.
ASKED_ON_CALL = "asked_on_call"


def audit_counts(counts: dict[str, int], on_call: bool) -> str:
    """An audit row's ``counts``: the rows erased per table, and whether the caller asked on a call."""
    return json.dumps({**counts, ASKED_ON_CALL: 1} if on_call else counts, sort_keys=True)


def _erase(db: sqlite3.Connection, ids: list[int], number: str | None, dry_run: bool) -> dict[str, int]:
    """Count, and unless ``dry_run`` delete, the rows of the profiles ``ids`` and of the calls from ``number``."""
    marks = ", ".join("?" * len(ids)) or "NULL"
    calls = f"SELECT id FROM calls WHERE customer_id IN ({marks}) OR caller_number = ?"
    theirs = f"customer_id IN ({marks}) OR call_id IN ({calls})"
    scopes: dict[str, tuple[str, list[object]]] = {
        "customers": (f"id IN ({marks})", [*ids]),
        "calls": (f"customer_id IN ({marks}) OR caller_number = ?", [*ids, number]),
        "orders": (theirs, [*ids, *ids, number]),
        "order_items": (f"order_id IN (SELECT id FROM orders WHERE {theirs})", [*ids, *ids, number]),
        "feedback": (theirs, [*ids, *ids, number]),
        "messages": (f"call_id IN ({calls})", [*ids, number]),
        "caller_facts": (theirs, [*ids, *ids, number]),
        "staff_messages": (theirs, [*ids, *ids, number]),
    }
    counts = {
        table: db.execute(f"SELECT count(*) FROM {table} WHERE {where}", args).fetchone()[0]
        for table, (where, args) in scopes.items()
    }
    if not dry_run and any(counts.values()):
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
    return counts


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
    """Everything held about the profiles on a number (or identity), and its calls where no name was given,
    as plain data."""
    db.row_factory = sqlite3.Row

    def all_rows(sql: str, args: tuple[object, ...]) -> list[dict[str, Any]]:
        return [dict(row) for row in db.execute(sql, args)]

    profiles = all_rows(
        "SELECT * FROM customers WHERE household = ? OR participant_identity = ? ORDER BY id", (identity, identity)
    )
    for profile in profiles:
        profile.pop("label", None)
        calls = all_rows("SELECT * FROM calls WHERE customer_id = ? ORDER BY started_at", (profile["id"],))
        profile["calls"] = [_held_call(all_rows, call) for call in calls]
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
    unnamed = all_rows(
        "SELECT * FROM calls WHERE caller_number = ? AND customer_id IS NULL ORDER BY started_at", (identity,)
    )
    return {
        "identity": identity,
        "profiles": profiles,
        "calls_without_profile": [_held_call(all_rows, call) for call in unnamed],
    }


def _held_call(
    all_rows: Callable[[str, tuple[object, ...]], list[dict[str, Any]]], call: dict[str, Any]
) -> dict[str, Any]:
    """One call of an access request: its order with the lines, its feedback and its transcript."""
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
        "SELECT seq, role, agent, content, created_at FROM messages WHERE call_id = ? ORDER BY seq", (call["id"],)
    )
    return call


# A call (running, or spooled) whose caller was erased after it began: writing it would bring them back.
# The one check of every write of a call (the end-of-call write, each checkpoint, the spool's replay),
# on both backends: an erasure of the call's profile, or of everything on the number it came from.
# (Another person of the household, erased alone, takes nothing of the others' calls.)
ERASED_SINCE_SQL = """
SELECT count(*) FROM erasures
WHERE erased_at >= ? AND (subject = ? OR (subject = ? AND scope = 'number'))
"""


def erased_since_query(key: AuditKey, snap: CallSnapshot) -> tuple[str, list[object]] | None:
    """The statement (``?`` placeholders) that counts erasures of ``snap``'s caller since it began;
    None when none can apply (no key yet means no erasure ever; an anonymous call with no number)."""
    if not (snap.identity or snap.household) or key.existing() is None:
        return None
    identity = key.subject(snap.identity) if snap.identity else None
    number = key.subject(snap.household) if snap.household else None
    return ERASED_SINCE_SQL, [snap.started_at or "", identity, number]


class AuditKey:
    """The key of the erasure audit's hashes: a file of random bytes, readable by its owner only.

    Read once it exists (blocking: call it from a thread, or once at open), then kept.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def existing(self) -> bytes | None:
        """The key, or None while no erasure has made one."""
        if self._key is None:
            try:
                self._key = self.path.read_bytes()
            except FileNotFoundError:
                return None
        return self._key

    def load(self) -> bytes:
        """The key, made now if no erasure has made one yet."""
        if self._key is None:
            self._key = _audit_key(self.path)
        return self._key

    def subject(self, identity: str) -> str:
        """A keyed hash of an identity: the same caller gives the same hash, no one can reverse it."""
        return hmac.new(self.load(), identity.encode("utf-8"), hashlib.sha256).hexdigest()


def _audit_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    # Written aside, then linked into place: whoever reads the key finds it whole, and the first one made stays.
    draft = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
            out.flush()
            os.fsync(out.fileno())
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_bytes()
