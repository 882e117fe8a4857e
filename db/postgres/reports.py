"""Read-only reports on PostgreSQL: the order export (``db.statements.reports``, the same lines byte for byte as
SQLite's) streamed as bytes through a server-side cursor, in read-only transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from db.errors import DatabaseUnavailable, NotADatabase
from db.reports import assemble, check_format, offsets
from db.safe_url import postgres_url, redact_url, scrub
from db.statements.reports import TIME_RANGE, ExportFormat, OrderFilter, count_query, export_query
from db.statements.sql import compiled


def open_read_only(url: str) -> psycopg.Connection[Any]:
    """A connection for reports: every transaction read-only; one line, without the password, if it fails."""
    postgres_url(url)
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {redact_url(url)}: {scrub(_one_line(exc), url)}") from None
    try:
        conn.read_only = True
        found = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not found or not found[0]:
            raise NotADatabase(f"{redact_url(url)} is not a memory-agent database (no schema_migrations table)")
        conn.rollback()
    except BaseException:
        conn.close()
        raise
    return conn


def count_rows(conn: psycopg.Connection[Any], filters: OrderFilter, *, items: bool = False) -> int:
    """How many rows an export will write (for a progress bar)."""
    with _translated(conn):
        row = conn.execute(*count_query(filters, "postgresql", items=items)).fetchone()
        conn.rollback()
    return int(row[0]) if row else 0


def export_chunks(
    conn: psycopg.Connection[Any],
    filters: OrderFilter,
    *,
    fmt: ExportFormat,
    items: bool = False,
    chunk_rows: int = 1_000,
    timezone: str = "UTC",
) -> Iterator[tuple[bytes, int]]:
    """The whole export as UTF-8 chunks, each with the number of rows it holds, from a server-side cursor;
    times in ``timezone``."""
    check_format(fmt)
    with _translated(conn), conn.transaction(), conn.cursor(name="memory_agent_export", binary=True) as cursor:
        found = conn.execute(compiled(TIME_RANGE, "postgresql")).fetchone()
        first, last = found if found else (None, None)
        spans = offsets(timezone, first, last)
        query, params = export_query(filters, "postgresql", fmt=fmt, items=items, spans=spans)
        cursor.itersize = chunk_rows
        cursor.execute(query, params)
        batches = iter(lambda: cursor.fetchmany(chunk_rows), [])
        yield from assemble(batches, fmt=fmt, items=items)


@contextmanager
def _translated(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """PostgreSQL's errors, while reading, as the data layer's own (one line, no password)."""
    try:
        yield
    except psycopg.Error as exc:
        info = conn.info
        raise DatabaseUnavailable(f"PostgreSQL at {info.host}:{info.port}/{info.dbname}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
