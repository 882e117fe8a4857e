"""Read-only reports: the order export, formatted by SQLite itself and streamed in chunks.

Each output line (a CSV record or a JSON object) is built by the query, so Python only joins
chunks of bytes and writes them: the export runs close to the speed of the ``sqlite3`` shell
and its memory does not grow with the number of orders.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from db import migrations
from db.clock import to_iso
from db.connection import database_path
from db.errors import NotADatabase
from db.models import OrderStatus

ExportFormat = Literal["csv", "json", "jsonl"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)


@dataclass(frozen=True)
class OrderFilter:
    """Which orders a report covers; every field is optional."""

    since: str | None = None  # inclusive, ISO 8601 UTC as stored
    until: str | None = None  # exclusive
    statuses: tuple[str, ...] = ()
    customer: str | None = None  # participant identity as stored; its household's profiles too


@dataclass(frozen=True)
class Column:
    name: str
    expr: str  # over the tables o (orders), c (customers), k (calls), f (feedback), i (order_items)
    kind: Literal["int", "plain", "text", "summary", "money", "list", "time"]
    since: int = 1  # the schema version that brought it: an older file exports it empty

    def at(self, version: int) -> Column:
        """The column as a file at schema ``version`` has it."""
        return self if version >= self.since else replace(self, expr="'[]'" if self.kind == "list" else "NULL")


ITEMS_SUMMARY = """coalesce((SELECT group_concat(
    s.quantity || 'x ' || s.name || CASE WHEN s.modifications = '[]' THEN ''
        ELSE ' (' || (SELECT group_concat(value, ', ') FROM json_each(s.modifications)) || ')' END,
    ', ') FROM order_items AS s WHERE s.order_id = o.id), '')"""

# Every export row starts with its order: which one, when, whose, and where it stands.
_ORDER_KEY = (
    Column("order_id", "o.id", "int"),
    Column("created_at", "o.created_at", "time"),  # the restaurant's local time, with its offset
    Column("customer_identity", "c.participant_identity", "text"),
    Column("customer_name", "coalesce(c.name, k.caller_name)", "text"),
    Column("status", "o.status", "plain"),
)

ORDER_COLUMNS = (
    *_ORDER_KEY,
    Column(
        "item_count",
        "(SELECT coalesce(sum(s.quantity), 0) FROM order_items AS s WHERE s.order_id = o.id)",
        "int",
    ),
    Column("items", ITEMS_SUMMARY, "summary"),
    Column("subtotal_dollars", "o.subtotal_cents", "money"),
    Column("tip_dollars", "o.tip_cents", "money"),
    Column("total_dollars", "o.total_cents", "money"),
    Column("rating", "f.rating", "int"),
    Column("kitchen_note", "o.kitchen_note", "text", since=6),
)

ITEM_COLUMNS = (
    *_ORDER_KEY,
    Column("position", "i.position", "int"),
    Column("menu_item", "i.menu_item", "text"),
    Column("name", "i.name", "text"),
    Column("quantity", "i.quantity", "int"),
    Column("modifications", "i.modifications", "list"),
    Column("unit_price_dollars", "i.unit_price_cents", "money"),
    Column("line_total_dollars", "i.quantity * i.unit_price_cents", "money"),
    Column("accepted_allergens", "i.accepted_allergens", "list", since=6),
    Column("kitchen_note", "o.kitchen_note", "text", since=6),
)

ORDERS_FROM = """FROM orders AS o
LEFT JOIN customers AS c ON c.id = o.customer_id
LEFT JOIN calls AS k ON k.id = o.call_id
LEFT JOIN feedback AS f ON f.call_id = o.call_id"""

ITEMS_FROM = """FROM orders AS o
JOIN order_items AS i ON i.order_id = o.id
LEFT JOIN customers AS c ON c.id = o.customer_id
LEFT JOIN calls AS k ON k.id = o.call_id"""


def export_columns(*, items: bool = False) -> tuple[str, ...]:
    """The export's column names (the CSV header, the JSON keys)."""
    return tuple(column.name for column in (ITEM_COLUMNS if items else ORDER_COLUMNS))


def parse_moment(text: str, *, end_of_day: bool = False, timezone: str = "UTC") -> str:
    """A date (``2025-01-31``) or an ISO 8601 time, as stored text (UTC).

    A plain date is a day in ``timezone`` (an IANA name: the restaurant's days); with
    ``end_of_day`` it means the end of that day (the next local midnight), so an ``until`` date
    includes the whole day. A time without an offset is in ``timezone`` too.
    """
    value = text.strip()
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1 if end_of_day else 0), time(), zone)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
        return to_iso(moment)
    except (ValueError, OverflowError):
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 time)") from None


def parse_statuses(text: str) -> tuple[str, ...]:
    """``placed,abandoned`` -> ('placed', 'abandoned'); refuses a status that does not exist."""
    statuses = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [status for status in statuses if status not in ORDER_STATUSES]
    if unknown or not statuses:
        raise ValueError(
            f"unknown status {', '.join(map(repr, unknown)) or repr(text)} (choose from {', '.join(ORDER_STATUSES)})"
        )
    return statuses


def open_read_only(url_or_path: str | Path) -> sqlite3.Connection:
    """Open a memory-agent database for reading only; refuse anything else before touching it.

    Opens with ``mode=ro`` (not ``immutable``), so a live database's WAL is read too. Accepts
    any schema version from 1 up to this code's: reports use only the tables of version 1.
    """
    path = Path(database_path(url_or_path))
    migrations.refuse_foreign_file(path)
    uri = f"file:{quote(path.resolve().as_posix())}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise NotADatabase(f"cannot open {path}: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = 1")
        if migrations.schema_version(conn) == 0:
            raise NotADatabase(f"{path} is an empty SQLite database, not a memory-agent database")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise NotADatabase(f"{path} is not a usable database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def where_sql(filters: OrderFilter, *, mark: str = "?", binary: str = "") -> tuple[str, list[object]]:
    """The WHERE clause of ``filters`` over ``orders AS o``, with ``mark`` for each parameter;
    ``binary`` is what makes a text comparison byte by byte (as SQLite's) where it is not already."""
    clauses: list[str] = []
    params: list[object] = []
    if filters.since is not None:
        clauses.append(f"o.created_at >= {mark}")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append(f"o.created_at < {mark}")
        params.append(filters.until)
    if filters.statuses:
        clauses.append(f"o.status IN ({', '.join([mark] * len(filters.statuses))})")
        params.extend(filters.statuses)
    if filters.customer is not None:
        # The identity, and every other person on the same number (a household: ``+1...#2``).
        clauses.append(
            f"o.customer_id IN (SELECT id FROM customers WHERE participant_identity = {mark}"
            f" OR participant_identity{binary} BETWEEN {mark} || '#' AND {mark} || '#~')"
        )
        params.extend([filters.customer] * 3)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


# -- local time: a stored UTC time as the restaurant's ISO 8601 local time, with its offset -----------


def offset_text(offset: timedelta) -> str:
    """A UTC offset as ISO 8601 writes it: ``-05:00``, ``+05:30`` (``+00:00`` for UTC)."""
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def offsets(zone: str, first: str | None, last: str | None) -> list[tuple[str, str]]:
    """The zone's offsets over the stored times from ``first`` to ``last`` (and now): pairs of the stored
    time each offset is in force from ("" for the first) and the offset, oldest first."""
    tz = ZoneInfo(zone)
    now = datetime.now(UTC)
    start = _stored(first) or now
    end = max(_stored(last) or now, now)
    moment = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    end += timedelta(days=2)

    def offset(at: datetime) -> timedelta:
        return at.astimezone(tz).utcoffset() or timedelta()

    found = [("", offset(moment))]
    while moment < end:
        following = moment + timedelta(days=1)
        if offset(following) != offset(moment):  # a change within the day: to the second it happens
            lo, hi = moment, following
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (lo, mid) if offset(mid) != offset(moment) else (mid, hi)
            found.append((to_iso(hi.replace(microsecond=0)), offset(following)))
        moment = following
    return [(since, offset_text(value)) for since, value in found]


def _stored(text: object) -> datetime | None:
    """A stored time as an aware moment; None for anything else (no bound then)."""
    try:
        moment = datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local_time_sql(x: str, spans: Sequence[tuple[str, str]], leaf: Callable[[str, str], str]) -> str:
    """An expression choosing ``leaf(offset, x)`` for the stored time ``x`` among ``spans``, by halves:
    stored times sort as text, so a few comparisons find the offset whatever the history's length."""
    if len(spans) == 1:
        return leaf(spans[0][1], x)
    half = len(spans) // 2
    return (
        f"CASE WHEN {x} < '{spans[half][0]}' THEN {local_time_sql(x, spans[:half], leaf)}"
        f" ELSE {local_time_sql(x, spans[half:], leaf)} END"
    )


def _sqlite_local(offset: str, x: str) -> str:
    return f"strftime('%Y-%m-%dT%H:%M:%S', substr({x}, 1, 19), '{offset}') || '{offset}'"


def in_local_time(
    columns: Sequence[Column], spans: Sequence[tuple[str, str]], leaf: Callable[[str, str], str]
) -> list[Column]:
    """The columns with each time column's expression in the restaurant's local time."""
    return [replace(c, expr=local_time_sql(c.expr, spans, leaf)) if c.kind == "time" else c for c in columns]


TIME_RANGE_SQL = "SELECT min(created_at), max(created_at) FROM orders"


# OWASP CSV injection: text starting with one of these is read as a formula by spreadsheets.
_FORMULA_CODES = ", ".join(str(ord(ch)) for ch in "=+-@\t\r")
# A spreadsheet whose list separator is ``;`` (or tab) starts a new cell after one inside our
# text, so a formula may hide there too (``Ann;=cmd|' /C calc'!A0``). In the CSV this query
# writes, a separator followed by one of these can only be inside a quoted text cell: every
# unquoted cell is a number or a date.
_AFTER_SEPARATOR = re.compile(rb"[,;\t][ \t]*(?=[=+\-@])")
_FRAGMENT_END = re.compile(rb'[,;\t"\r\n]')
# Digits, spaces, brackets and dashes call nothing: a phone number is left readable.
_NUMBER = re.compile(rb"[+-]?\d[\d ().-]*")


def _quote_after_separator(match: re.Match[bytes]) -> bytes:
    text = match.string
    end = _FRAGMENT_END.search(text, match.end())
    fragment = text[match.end() : end.start() if end else len(text)].strip()
    return match.group() if _NUMBER.fullmatch(fragment) else match.group() + b"'"


def _guard(first: str) -> str:
    """A quote mark when text starts like a formula (OWASP), else nothing; ``first`` is the text.

    A phone number or plain number (``+15551234567``, ``-2``) is left as it is: it calls nothing.
    """
    number = (
        f"unicode({first}) IN (43, 45) AND coalesce(unicode(substr({first}, 2)), 0) BETWEEN 48 AND 57"
        f" AND ltrim(substr({first}, 2), '0123456789 ().-') = ''"
    )
    return f"CASE WHEN unicode({first}) IN ({_FORMULA_CODES}) AND NOT ({number}) THEN '''' ELSE '' END"


def _csv_cell(column: Column) -> tuple[str, list[str]]:
    """The cell's printf format and arguments. Text is always quoted (RFC 4180): ``%w`` doubles
    the double quotes inside; an expensive value appears once, so SQLite evaluates it once."""
    x = column.expr
    if column.kind == "money":
        return "%d.%02d", [f"{x} / 100", f"{x} % 100"]
    if column.kind in ("int", "plain"):
        return "%s", [f"coalesce({x}, '')"]
    if column.kind == "time":
        return "%s", [x]  # never NULL: built from a stored time
    if column.kind == "summary":
        return '"%w"', [x]  # starts with a quantity and is never NULL
    if column.kind == "list":
        joined = f"(SELECT group_concat(value, ', ') FROM json_each({x}))"
        guard = _guard(f"json_extract({x}, '$[0]')")
        cell = f"""CASE WHEN {x} = '[]' THEN '' ELSE printf('"%s%w"', {guard}, {joined}) END"""
        return "%s", [cell]
    return '"%s%w"', [_guard(x), f"coalesce({x}, '')"]


def _csv_line(columns: Sequence[Column]) -> str:
    """One printf builds the whole CSV record: one allocation per row instead of one per cell."""
    cells = [_csv_cell(c) for c in columns]
    pattern = ",".join(fmt for fmt, _ in cells)
    arguments = ",\n    ".join(arg for _, args in cells for arg in args)
    return f"printf('{pattern}' || char(13, 10),\n    {arguments})"


def _json_value(column: Column) -> str:
    x = column.expr
    if column.kind == "money":
        return f"json(printf('%d.%02d', {x} / 100, {x} % 100))"
    if column.kind == "list":
        return f"json({x})"
    return x


def export_sql(
    filters: OrderFilter,
    *,
    fmt: ExportFormat,
    items: bool = False,
    version: int = migrations.LATEST_VERSION,
    spans: Sequence[tuple[str, str]] = (("", "+00:00"),),
) -> tuple[str, list[object]]:
    """The query that yields one finished output line per order (or per item), from a file at schema ``version``,
    times at the offsets ``spans`` (``offsets``)."""
    columns = in_local_time(
        [column.at(version) for column in (ITEM_COLUMNS if items else ORDER_COLUMNS)], spans, _sqlite_local
    )
    where, params = where_sql(filters)
    if fmt == "csv":
        line = _csv_line(columns)
    else:
        line = "json_object(" + ", ".join(f"'{c.name}', {_json_value(c)}" for c in columns) + ")"
        if fmt == "jsonl":
            line += " || char(10)"
    order = "o.created_at, o.id, i.position" if items else "o.created_at, o.id"
    return f"SELECT {line}\n{ITEMS_FROM if items else ORDERS_FROM}\n{where}\nORDER BY {order}", params


def count_rows(conn: sqlite3.Connection, filters: OrderFilter, *, items: bool = False) -> int:
    """How many rows an export will write (for a progress bar)."""
    where, params = where_sql(filters)
    source = "FROM orders AS o JOIN order_items AS i ON i.order_id = o.id" if items else "FROM orders AS o"
    return int(conn.execute(f"SELECT count(*) {source} {where}", params).fetchone()[0])


def export_chunks(
    conn: sqlite3.Connection,
    filters: OrderFilter,
    *,
    fmt: ExportFormat,
    items: bool = False,
    chunk_rows: int = 5_000,
    timezone: str = "UTC",
) -> Iterator[tuple[bytes, int]]:
    """The whole export as UTF-8 chunks, each with the number of rows it holds; times in ``timezone``."""
    check_format(fmt)
    first, last = conn.execute(TIME_RANGE_SQL).fetchone()
    spans = offsets(timezone, first, last)
    sql, params = export_sql(filters, fmt=fmt, items=items, version=migrations.schema_version(conn), spans=spans)
    cursor = conn.cursor()
    cursor.row_factory = None
    conn.text_factory = bytes
    try:
        cursor.execute(sql, params)
        yield from assemble(iter(lambda: cursor.fetchmany(chunk_rows), []), fmt=fmt, items=items)
    finally:
        conn.text_factory = str
        cursor.close()


def check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")


def assemble(
    batches: Iterator[Sequence[Sequence[bytes]]], *, fmt: ExportFormat, items: bool = False
) -> Iterator[tuple[bytes, int]]:
    """The export's chunks from batches of finished lines (rows of one column, as bytes)."""
    if fmt == "csv":
        yield (",".join(export_columns(items=items)) + "\r\n").encode(), 0
    elif fmt == "json":
        yield b"[", 0
    separator = b"\n"
    for rows in batches:
        lines = [row[0] for row in rows]
        if fmt == "json":
            yield separator + b",\n".join(lines), len(lines)
            separator = b",\n"
        elif fmt == "csv":
            yield _AFTER_SEPARATOR.sub(_quote_after_separator, b"".join(lines)), len(lines)
        else:
            yield b"".join(lines), len(lines)
    if fmt == "json":
        yield (b"\n]\n" if separator == b",\n" else b"]\n"), 0
