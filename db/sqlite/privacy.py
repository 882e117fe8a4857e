"""A caller's personal data on SQLite: erased on request, handed over on request, and not kept past its time
(``db.statements.privacy``, written once for both backends).

These functions run on the writer thread inside one transaction. Deleted content leaves no trace inside
the file: the writer runs with ``secure_delete`` (freed pages are zeroed), the full-text indexes are merged
afterwards (so no token of the deleted rows stays in their shadow tables), and the caller of these
functions empties the write-ahead log.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from db.statements import privacy as statements
from db.statements.plan import Plan, run_sqlite

_FTS = ("messages_fts", "feedback_fts")


def forget(db: sqlite3.Connection, erasure: Plan[dict[str, Any]], dry_run: bool) -> dict[str, Any]:
    """An erasure (``db.statements.privacy.forget``) on SQLite, then its full-text indexes merged."""
    found = run_sqlite(db, erasure)
    if not dry_run and any(found["counts"].values()):
        merge_search_indexes(db)
    return found


def purge(db: sqlite3.Connection, cutoff: str, batch: int) -> dict[str, int]:
    """``db.statements.privacy.purge`` on SQLite, then its full-text indexes merged."""
    done = run_sqlite(db, statements.purge(cutoff, batch))
    if done["messages"] or done["comments"]:
        merge_search_indexes(db)
    return done


def merge_search_indexes(db: sqlite3.Connection) -> None:
    """Rewrite the full-text indexes so that deleted rows leave no token behind."""
    for table in _FTS:
        db.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")


def export_caller(db: sqlite3.Connection, identity: str) -> dict[str, Any]:
    """``db.statements.privacy.export_caller`` on SQLite."""
    return run_sqlite(db, statements.export_caller(identity))
