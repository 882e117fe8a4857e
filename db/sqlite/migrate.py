"""SQLite's side of the migrations (``db.schema.alembic``): refusing files not ours, migrating under the lock.

A file's schema version is its Alembic revision (``alembic_version``), or for a file no memory-agent
with Alembic has opened yet, the last of the migrations before it (``schema_migrations``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, StaticPool, create_engine
from sqlalchemy.exc import DBAPIError

from db.errors import NotADatabase
from db.schema import LATEST_VERSION, checked_version, views

# PRAGMA application_id marks a file as this product's database ("MEMA").
APPLICATION_ID = 0x4D454D41
_SQLITE_MAGIC = b"SQLite format 3\x00"


def refuse_foreign_file(path: Path) -> None:
    """Refuse a missing, foreign or non-SQLite file from its header, without opening it in SQLite."""
    if not path.exists():
        raise NotADatabase(f"database {path} does not exist")
    if not path.is_file():
        raise NotADatabase(f"database {path} is not a file")
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise NotADatabase(f"cannot read {path}: {exc.strerror}") from None
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise NotADatabase(f"{path} is not a SQLite database")
    app_id = int.from_bytes(header[68:72], "big")
    # A new database's first pages may still be in its WAL: then SQLite itself has to decide.
    wal = path.with_name(path.name + "-wal")
    pending = app_id == 0 and wal.is_file() and wal.stat().st_size > 0
    if app_id != APPLICATION_ID and not pending:
        raise NotADatabase(f"{path} is a SQLite database, but not a memory-agent database")


# The last version of the migrations before Alembic (``db.schema.alembic.legacy``), which revision 0011 applies.
LEGACY_VERSION = 11


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's schema version, 0 for an empty file; refuses files that are not ours, or too new."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(f"not a SQLite database ({exc})") from None
    if app_id == 0 and not tables:
        return 0
    if app_id != APPLICATION_ID or not tables & {"schema_migrations", "alembic_version"}:
        raise NotADatabase("a SQLite database, but not a memory-agent database")
    revision = (
        conn.execute("SELECT max(version_num) FROM alembic_version").fetchone() if "alembic_version" in tables else None
    )
    if revision is not None and revision[0] is not None:
        return checked_version(str(revision[0]))
    version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0])
    return checked_version(str(version)) if version > LEGACY_VERSION else version


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to this code's schema (``db.schema.alembic.upgrade``) in one IMMEDIATE transaction."""
    version = schema_version(conn)
    stamped = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone()
    with _bound(conn) as connection:
        if version == LATEST_VERSION and stamped and views.up_to_date(connection):
            return LATEST_VERSION  # read without the lock: the usual case, nothing to do (and Alembic not loaded)
        from db.schema import alembic as schema

        connection.exec_driver_sql("BEGIN IMMEDIATE")  # another process migrating holds it: we wait, then re-check
        try:
            connection.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
            schema.upgrade(connection)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
    return LATEST_VERSION


@contextlib.contextmanager
def _bound(conn: sqlite3.Connection) -> Iterator[Connection]:
    """``conn`` as a SQLAlchemy connection (the caller's: left open, in autocommit mode as it was)."""
    engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)
    try:
        with engine.connect() as connection:
            yield connection
    except DBAPIError as exc:  # the driver's own error, as the callers know it ("database is locked"...)
        raise (exc.orig or exc) from None
