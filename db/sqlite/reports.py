"""The order export on SQLite: a file opened for reading only, and the export's rows streamed in chunks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from db.errors import NotADatabase
from db.reports import assemble, check_format, offsets
from db.sqlite import migrate
from db.sqlite.connection import database_path
from db.statements.reports import TIME_RANGE, ExportFormat, OrderFilter, count_query, export_query
from db.statements.sql import compiled


def open_read_only(url_or_path: str | Path) -> sqlite3.Connection:
    """Open a memory-agent database for reading only; refuse anything else before touching it.

    Opens with ``mode=ro`` (not ``immutable``), so a live database's WAL is read too. Accepts
    any schema version from 1 up to this code's: reports use only the tables of version 1.
    """
    path = Path(database_path(url_or_path))
    migrate.refuse_foreign_file(path)
    uri = f"file:{quote(path.resolve().as_posix())}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise NotADatabase(f"cannot open {path}: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = 1")
        if migrate.schema_version(conn) == 0:
            raise NotADatabase(f"{path} is an empty SQLite database, not a memory-agent database")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise NotADatabase(f"{path} is not a usable database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def count_rows(conn: sqlite3.Connection, filters: OrderFilter, *, items: bool = False) -> int:
    """How many rows an export will write (for a progress bar)."""
    return int(conn.execute(*count_query(filters, "sqlite", items=items)).fetchone()[0])


def export_chunks(
    conn: sqlite3.Connection,
    filters: OrderFilter,
    *,
    fmt: ExportFormat,
    items: bool = False,
    chunk_rows: int = 1_000,
    timezone: str = "UTC",
) -> Iterator[tuple[bytes, int]]:
    """The whole export as UTF-8 chunks, each with the number of rows it holds; times in ``timezone``."""
    check_format(fmt)
    first, last = conn.execute(compiled(TIME_RANGE, "sqlite")).fetchone()
    spans = offsets(timezone, first, last)
    version = migrate.schema_version(conn)
    sql, params = export_query(filters, "sqlite", fmt=fmt, items=items, version=version, spans=spans)
    cursor = conn.cursor()
    cursor.row_factory = None
    conn.text_factory = bytes
    try:
        cursor.execute(sql, params)
        yield from assemble(iter(lambda: cursor.fetchmany(chunk_rows), []), fmt=fmt, items=items)
    finally:
        conn.text_factory = str
        cursor.close()
