"""A call's statements (``db.statements.calls``) on SQLite: run on the writer thread, inside the
transaction ``db.sqlite.connection.Writer`` opened, in one hop."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from db import spool, stale
from db.privacy import AuditKey, erased_since_values
from db.schema.models import CallSnapshot
from db.statements import calls
from db.statements.plan import run_sqlite


def write_call(
    db: sqlite3.Connection, snap: CallSnapshot, now: str, careful: bool, audit_key: AuditKey | None = None
) -> list[str]:
    """See ``db.statements.calls.write_call``; returns the parts left out (``careful`` only)."""
    erased = None if audit_key is None else erased_since_values(audit_key, snap)
    return run_sqlite(db, calls.write_call(snap, now, careful, erased))


def close_calls(db: sqlite3.Connection, found: list[stale.StaleCall], spool_file: Path, now: str) -> list[str]:
    """Close the stale calls that are not waiting in the spool to be replayed."""
    # Read under the write lock: a replay commits before it forgets a spooled call.
    return run_sqlite(db, calls.close_calls(found, spool.call_ids(spool_file), now))
