"""The order export on PostgreSQL: the same lines, byte for byte, as SQLite's (``db.reports``).

Only what SQLite says in its own words is said again here (``printf``, ``group_concat``,
``json_each``, ``json_object``); the columns, filters and the assembly of chunks are shared.
Each line is finished by the query and streamed through a server-side cursor, as bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg

from db.errors import DatabaseUnavailable, NotADatabase
from db.pg.safe_url import postgres_url, redact_url, scrub
from db.reports import (
    ITEM_COLUMNS,
    ITEMS_FROM,
    ORDER_COLUMNS,
    ORDERS_FROM,
    TIME_RANGE_SQL,
    Column,
    ExportFormat,
    OrderFilter,
    assemble,
    check_format,
    in_local_time,
    offsets,
    where_sql,
)

# In order of position, as SQLite reads them.
_LIST = (
    "(SELECT string_agg(e.value, ', ' ORDER BY e.n)"
    " FROM jsonb_array_elements_text(({x})::jsonb) WITH ORDINALITY AS e(value, n))"
)
ITEMS_SUMMARY = f"""coalesce((SELECT string_agg(
    s.quantity || 'x ' || s.name || CASE WHEN s.modifications::text = '[]' THEN ''
        ELSE ' (' || {_LIST.format(x="s.modifications")} || ')' END,
    ', ' ORDER BY s.position) FROM order_items AS s WHERE s.order_id = o.id), '')"""

# OWASP CSV injection, as in db.reports: a quote mark before text that starts like a formula,
# unless it is a phone number or a plain number.
_FORMULA_STARTS = "'=', '+', '-', '@', chr(9), chr(13)"
_NUMBER = "'^[+-][0-9][0-9 ().-]*$'"


def _columns(columns: Sequence[Column], spans: Sequence[tuple[str, str]]) -> tuple[Column, ...]:
    columns = in_local_time(columns, spans, _local)
    return tuple(replace(c, expr=ITEMS_SUMMARY) if c.kind == "summary" else c for c in columns)


def _local(offset: str, x: str) -> str:
    """As SQLite's ``strftime`` writes it (``db.reports``): whole seconds, then the offset."""
    return f"""to_char(left({x}, 19)::timestamp + interval '{offset}', 'YYYY-MM-DD"T"HH24:MI:SS') || '{offset}'"""


def _guard(first: str) -> str:
    return f"CASE WHEN left({first}, 1) IN ({_FORMULA_STARTS}) AND {first} !~ {_NUMBER} THEN '''' ELSE '' END"


def _quoted(text: str) -> str:
    return f"""replace({text}, '"', '""')"""


def _money(x: str) -> str:
    return f"(({x}) / 100)::text || '.' || lpad(mod({x}, 100)::text, 2, '0')"


def _csv_cell(column: Column) -> str:
    x = column.expr
    if column.kind == "money":
        return _money(x)
    if column.kind in ("int", "plain"):
        return f"coalesce(({x})::text, '')"
    if column.kind == "time":
        return x
    if column.kind == "summary":
        return f"""'"' || {_quoted(x)} || '"'"""
    if column.kind == "list":
        joined = _LIST.format(x=x)
        guard = _guard(f"(({x})::jsonb ->> 0)")
        return f"""CASE WHEN ({x})::text = '[]' THEN '' ELSE '"' || {guard} || {_quoted(joined)} || '"' END"""
    return f"""'"' || {_guard(x)} || {_quoted(f"coalesce({x}, '')")} || '"'"""


def _json_value(column: Column) -> str:
    x = column.expr
    if column.kind == "money":
        return _money(x)
    if column.kind == "int":
        return f"coalesce(({x})::text, 'null')"
    if column.kind == "list":
        items = "(SELECT '[' || string_agg(to_json(e.value)::text, ',' ORDER BY e.n) || ']'"
        items += f" FROM jsonb_array_elements_text(({x})::jsonb) WITH ORDINALITY AS e(value, n))"
        return f"CASE WHEN ({x})::text = '[]' THEN '[]' ELSE {items} END"
    return f"coalesce(to_json({x})::text, 'null')"


def export_sql(
    filters: OrderFilter,
    *,
    fmt: ExportFormat,
    items: bool = False,
    spans: Sequence[tuple[str, str]] = (("", "+00:00"),),
) -> tuple[str, list[object]]:
    """The query that yields one finished output line per order (or per item), as UTF-8 bytes, times at the
    offsets ``spans``."""
    columns = _columns(ITEM_COLUMNS if items else ORDER_COLUMNS, spans)
    where, params = where_sql(filters, mark="%s::text", binary=' COLLATE "C"')
    if fmt == "csv":
        line = " || ',' || ".join(_csv_cell(c) for c in columns) + " || chr(13) || chr(10)"
    else:
        parts = [f"""'{"{" if n == 0 else ","}"{c.name}":' || {_json_value(c)}""" for n, c in enumerate(columns)]
        line = " || ".join(parts) + " || '}'" + (" || chr(10)" if fmt == "jsonl" else "")
    order = "o.created_at, o.id, i.position" if items else "o.created_at, o.id"
    return (
        f"SELECT convert_to({line}, 'UTF8')\n{ITEMS_FROM if items else ORDERS_FROM}\n{where}\nORDER BY {order}",
        params,
    )


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
    where, params = where_sql(filters, mark="%s::text", binary=' COLLATE "C"')
    source = "FROM orders AS o JOIN order_items AS i ON i.order_id = o.id" if items else "FROM orders AS o"
    with _translated(conn):
        row = conn.execute(f"SELECT count(*) {source} {where}", params).fetchone()
        conn.rollback()
    return int(row[0]) if row else 0


def export_chunks(
    conn: psycopg.Connection[Any],
    filters: OrderFilter,
    *,
    fmt: ExportFormat,
    items: bool = False,
    chunk_rows: int = 5_000,
    timezone: str = "UTC",
) -> Iterator[tuple[bytes, int]]:
    """The whole export as UTF-8 chunks, each with the number of rows it holds, from a server-side cursor;
    times in ``timezone``."""
    check_format(fmt)
    with _translated(conn), conn.transaction(), conn.cursor(name="memory_agent_export", binary=True) as cursor:
        found = conn.execute(TIME_RANGE_SQL).fetchone()
        first, last = found if found else (None, None)
        query, params = export_sql(filters, fmt=fmt, items=items, spans=offsets(timezone, first, last))
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
