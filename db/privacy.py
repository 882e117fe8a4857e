"""A caller's personal data on SQLite: erased on request, handed over on request, and not kept past its time
(``db.statements.privacy``, written once for both backends), and the erasure audit's key.

The functions taking a ``sqlite3.Connection`` run on the writer thread inside one transaction.
Deleted content leaves no trace inside the file: the writer runs with ``secure_delete`` (freed
pages are zeroed), the full-text indexes are merged afterwards (so no token of the deleted rows
stays in their shadow tables), and the caller of these functions empties the write-ahead log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from db.schema.models import CallSnapshot
from db.statements import privacy as statements
from db.statements.plan import run_sqlite
from db.statements.privacy import ASKED_ON_CALL as ASKED_ON_CALL
from db.statements.privacy import audit_counts as audit_counts

_FTS = ("messages_fts", "feedback_fts")


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
    """``db.statements.privacy.forget`` on SQLite, then its full-text indexes merged."""
    found = run_sqlite(db, statements.forget(identity, name, exact, dry_run, subject, now, on_call))
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
