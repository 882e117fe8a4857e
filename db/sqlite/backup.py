"""A consistent copy of the live database, made with SQLite's online backup API while calls run.

The copy is written beside the target under a temporary name, checked, made a self-contained
rollback-journal file readable by its owner only, and then renamed onto the target: the target
is either the old file or the complete, checked copy, never half of one. The live database is
only read: in WAL mode the copy reads one snapshot, which writers never wait for.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from db import spool
from db.errors import BackupRefused, NotADatabase, RepositoryError
from db.sqlite import migrate
from db.sqlite.connection import BUSY_TIMEOUT_MS

PAGES_PER_STEP = 1024

# Files SQLite and the product keep beside a database, named after it.
_COMPANIONS = ("-wal", "-shm", "-journal", ".lock", spool.SUFFIX, f"{spool.SUFFIX}.tmp", spool.REJECTED_SUFFIX)
# A non-empty one of these beside a file is read by SQLite as part of it: a stale one would
# overwrite the fresh copy the next time it is opened.
_REPLAYED = ("-wal", "-journal")


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote."""

    target: Path
    bytes: int
    pages: int
    seconds: float


def backup_database(
    source: str | Path, target: str | Path, *, overwrite: bool = False, pages_per_step: int = PAGES_PER_STEP
) -> BackupResult:
    """Copy the memory-agent database ``source`` to ``target`` while it is in use (blocking).

    Refuses, with ``BackupRefused``, a target that is the live database or one of its files, an
    existing target unless ``overwrite``, and a target folder that does not exist; raises
    ``NotADatabase`` for a missing or foreign source, which is never created or written to.
    """
    if pages_per_step < 1:
        raise ValueError(f"pages_per_step must be at least 1, not {pages_per_step}")
    started = time.perf_counter()
    source, target = Path(source), Path(target)
    _check_target(source, target, overwrite=overwrite)
    src = _open_source(source)
    try:
        pages = _copy(src, target, pages_per_step)
    except sqlite3.Error as exc:
        raise RepositoryError(f"backup of {source} failed: {_one_line(exc)}") from None
    except OSError as exc:
        raise RepositoryError(f"backup to {target} failed: {exc.strerror or exc}") from None
    finally:
        src.close()
    return BackupResult(target, target.stat().st_size, pages, time.perf_counter() - started)


def _check_target(source: Path, target: Path, *, overwrite: bool) -> None:
    if not target.parent.is_dir():
        raise BackupRefused(f"folder {target.parent} does not exist")
    if target.is_dir():
        raise BackupRefused(f"backup target {target} is a folder")
    live = {
        os.path.realpath(f"{base}{suffix}")
        for base in (os.path.abspath(source), os.path.realpath(source))
        for suffix in ("", *_COMPANIONS)
    }
    if os.path.realpath(target) in live or (target.exists() and source.exists() and os.path.samefile(target, source)):
        raise BackupRefused(f"{target} is the live database {source} or one of its files; back up to another file")
    for suffix in _REPLAYED:
        beside = Path(f"{target}{suffix}")
        if beside.exists() and beside.stat().st_size > 0:
            raise BackupRefused(f"{beside} is beside the target (is {target} in use?); move it away first")
    if target.exists() and not overwrite:
        raise BackupRefused(f"{target} already exists (--force replaces it)")


def _open_source(source: Path) -> sqlite3.Connection:
    """Open the live database read-only in effect: never created (``mode=rw``), never written (``query_only``).

    A file that is not ours is refused from its header, before SQLite opens it (and its WAL).
    """
    migrate.refuse_foreign_file(source)
    uri = f"file:{quote(source.resolve().as_posix())}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise NotADatabase(f"cannot open {source}: {_one_line(exc)}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = 1")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        raise NotADatabase(f"{source} is not a usable database ({_one_line(exc)})") from None
    if app_id != migrate.APPLICATION_ID:
        conn.close()
        raise NotADatabase(f"{source} is a SQLite database, but not a memory-agent database")
    return conn


def _copy(src: sqlite3.Connection, target: Path, pages_per_step: int) -> int:
    """Back ``src`` up into a temporary file, then rename it onto ``target``; returns its page count."""
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        pages = _copy_into(src, tmp, pages_per_step)
        os.replace(tmp, target)
        spool.fsync_path(target.parent)
    except BaseException:
        _remove(tmp)
        raise
    return pages


def _copy_into(src: sqlite3.Connection, tmp: Path, pages_per_step: int) -> int:
    """Back ``src`` up into a new file ``tmp``, check it, flush it; returns its page count."""
    for leftover in _with_companions(tmp):  # of an earlier run that died with our process id
        leftover.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # personal data from the start
    if src.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        # One read transaction for the whole copy: its steps all read the same snapshot, and a
        # commit in between cannot restart it. A WAL reader does not block writers.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
    dst = sqlite3.connect(tmp, isolation_level=None)
    try:
        # In steps: in rollback-journal mode the live file is locked only while a step reads it.
        src.backup(dst, pages=pages_per_step)
        # The copy inherits the live file's WAL mode; a backup is one self-contained file.
        mode = dst.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        if mode != "delete":
            raise RepositoryError(f"the copy stayed in journal mode {mode}")
        problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise RepositoryError(
                f"the copy failed SQLite's integrity check, so the database may be damaged: {problems[0]}"
            )
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
    finally:
        dst.close()
        if src.in_transaction:
            src.execute("COMMIT")
    spool.fsync_path(tmp)
    os.chmod(tmp, 0o600)
    return pages


def _with_companions(path: Path) -> list[Path]:
    return [path, *(Path(f"{path}{suffix}") for suffix in ("-journal", "-wal", "-shm"))]


def _remove(tmp: Path) -> None:
    for path in _with_companions(tmp):
        with suppress(OSError):
            path.unlink(missing_ok=True)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
