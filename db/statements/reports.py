"""The order export, written once: which rows, which columns, in which order, each output line finished by the query.

Each line (a CSV record or a JSON object) is built by the database, so Python only joins chunks of bytes:
the export runs close to the speed of ``sqlite3 -csv`` or ``psql \\copy`` and its memory does not grow with
the number of orders. Where the two databases say it in their own words (``printf`` and ``json_object`` in
SQLite, concatenation in PostgreSQL), a line is one named construct (``record``) compiled for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, literal_column, null, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from db.schema.models import CallRow, CustomerRow, FeedbackRow, OrderItemRow, OrderRow
from db.statements.sql import (
    Dialect,
    at_offset,
    bytewise,
    compiled_now,
    list_first,
    list_joined,
    string_agg,
    table,
    words,
)

ExportFormat = Literal["csv", "json", "jsonl"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
Kind = Literal["int", "plain", "text", "summary", "money", "list", "time"]


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
    expr: ColumnElement[Any]  # over the tables o (orders), c (customers), k (calls), f (feedback), i (order_items)
    kind: Kind
    since: int = 1  # the schema version that brought it: an older file exports it empty

    def at(self, version: int) -> Column:
        """The column as a file at schema ``version`` has it."""
        return self if version >= self.since else replace(self, expr=words("[]") if self.kind == "list" else null())


orders, items = table(OrderRow), table(OrderItemRow)
o, i, s = orders.alias("o"), items.alias("i"), items.alias("s")
c, k, f = table(CustomerRow).alias("c"), table(CallRow).alias("k"), table(FeedbackRow).alias("f")


def _cat(*parts: ColumnElement[Any]) -> ColumnElement[Any]:
    """Texts joined with ``||``."""
    whole = parts[0]
    for part in parts[1:]:
        whole = whole.op("||")(part)
    return whole


# One line per item of an order: "2x Margherita (no basil), 1x Tiramisu".
ITEMS_SUMMARY = func.coalesce(
    select(
        string_agg(
            _cat(
                s.c.quantity,
                words("x "),
                s.c.name,
                case(
                    (s.c.modifications.op("=")(words("[]")), words("")),
                    else_=_cat(words(" ("), list_joined(s.c.modifications, words(", ")), words(")")),
                ),
            ),
            ", ",
            order_by=s.c.position,
        )
    )
    .where(s.c.order_id == o.c.id)
    .scalar_subquery(),
    words(""),
)

# Every export row starts with its order: which one, when, whose, and where it stands.
_ORDER_KEY = (
    Column("order_id", o.c.id, "int"),
    Column("created_at", o.c.created_at, "time"),  # the restaurant's local time, with its offset
    Column("customer_identity", c.c.participant_identity, "text"),
    Column("customer_name", func.coalesce(c.c.name, k.c.caller_name), "text"),
    Column("status", o.c.status, "plain"),
)

ORDER_COLUMNS = (
    *_ORDER_KEY,
    Column(
        "item_count",
        select(func.coalesce(func.sum(s.c.quantity), literal_column("0")))
        .where(s.c.order_id == o.c.id)
        .scalar_subquery(),
        "int",
    ),
    Column("items", ITEMS_SUMMARY, "summary"),
    Column("subtotal_dollars", o.c.subtotal_cents, "money"),
    Column("tip_dollars", o.c.tip_cents, "money"),
    Column("total_dollars", o.c.total_cents, "money"),
    Column("rating", f.c.rating, "int"),
    Column("kitchen_note", o.c.kitchen_note, "text", since=6),
)

ITEM_COLUMNS = (
    *_ORDER_KEY,
    Column("position", i.c.position, "int"),
    Column("menu_item", i.c.menu_item, "text"),
    Column("name", i.c.name, "text"),
    Column("quantity", i.c.quantity, "int"),
    Column("modifications", i.c.modifications, "list"),
    Column("unit_price_dollars", i.c.unit_price_cents, "money"),
    Column("line_total_dollars", i.c.quantity * i.c.unit_price_cents, "money"),
    Column("accepted_allergens", i.c.accepted_allergens, "list", since=6),
    Column("kitchen_note", o.c.kitchen_note, "text", since=6),
)


def export_columns(*, items: bool = False) -> tuple[str, ...]:
    """The export's column names (the CSV header, the JSON keys)."""
    return tuple(column.name for column in (ITEM_COLUMNS if items else ORDER_COLUMNS))


def _source(*, items: bool) -> Any:
    people = o.outerjoin(c, c.c.id == o.c.customer_id).outerjoin(k, k.c.id == o.c.call_id)
    if items:
        return (
            o.join(i, i.c.order_id == o.c.id)
            .outerjoin(c, c.c.id == o.c.customer_id)
            .outerjoin(k, k.c.id == o.c.call_id)
        )
    return people.outerjoin(f, f.c.call_id == o.c.call_id)


def where(filters: OrderFilter) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """The condition of ``filters`` over ``orders AS o``, and its values."""
    clauses: list[ColumnElement[bool]] = []
    values: dict[str, Any] = {}
    if filters.since is not None:
        clauses.append(o.c.created_at >= bindparam("since"))
        values["since"] = filters.since
    if filters.until is not None:
        clauses.append(o.c.created_at < bindparam("until"))
        values["until"] = filters.until
    if filters.statuses:
        clauses.append(o.c.status.in_([bindparam(f"status_{n}") for n in range(len(filters.statuses))]))
        values.update({f"status_{n}": status for n, status in enumerate(filters.statuses)})
    if filters.customer is not None:
        # The identity, and every other person on the same number (a household: ``+1...#2``).
        people = table(CustomerRow)
        key = people.c.participant_identity
        clauses.append(
            o.c.customer_id.in_(
                select(people.c.id).where(
                    or_(
                        key == bindparam("customer"),
                        bytewise(key).between(bindparam("household_first"), bindparam("household_last")),
                    )
                )
            )
        )
        values.update(
            customer=filters.customer, household_first=filters.customer + "#", household_last=filters.customer + "#~"
        )
    return and_(*clauses), values


def count_query(filters: OrderFilter, dialect: Dialect, *, items: bool = False) -> tuple[str, dict[str, Any]]:
    """How many rows an export will write (for a progress bar)."""
    source = o.join(i, i.c.order_id == o.c.id) if items else o
    condition, values = where(filters)
    return compiled_now(select(func.count()).select_from(source).where(condition), dialect), values


TIME_RANGE = select(func.min(orders.c.created_at), func.max(orders.c.created_at))


def local_time(x: ColumnElement[Any], spans: Sequence[tuple[str, str]]) -> ColumnElement[Any]:
    """The stored time ``x`` at the restaurant's offset of its moment, among ``spans`` (pairs of the stored time
    each offset is in force from, oldest first): stored times sort as text, so a few comparisons find it."""
    if len(spans) == 1:
        return at_offset(x, spans[0][1])
    half = len(spans) // 2
    return case((x < words(spans[half][0]), local_time(x, spans[:half])), else_=local_time(x, spans[half:]))


def export_query(
    filters: OrderFilter,
    dialect: Dialect,
    *,
    fmt: ExportFormat,
    items: bool = False,
    version: int | None = None,
    spans: Sequence[tuple[str, str]] = (("", "+00:00"),),
) -> tuple[str, dict[str, Any]]:
    """The query that yields one finished output line per order (or per item), as UTF-8, with its values; from a
    file at schema ``version`` (None: the latest), times at the offsets ``spans``."""
    chosen = ITEM_COLUMNS if items else ORDER_COLUMNS
    columns = [column if version is None else column.at(version) for column in chosen]
    columns = [replace(c, expr=local_time(c.expr, spans)) if c.kind == "time" else c for c in columns]
    order = (o.c.created_at, o.c.id, i.c.position) if items else (o.c.created_at, o.c.id)
    condition, values = where(filters)
    query: Select[Any] = select(record(fmt, columns)).select_from(_source(items=items))
    query = query.where(condition).order_by(*order)
    return compiled_now(query, dialect), values


class record(ColumnElement[Any]):  # noqa: N801
    """One output line of ``columns`` in ``fmt``, as UTF-8 bytes: a CSV record (RFC 4180, its text guarded
    against formulas) or a JSON object (``jsonl``: with its newline)."""

    inherit_cache = False

    def __init__(self, fmt: ExportFormat, columns: Sequence[Column]) -> None:
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
        self.fmt, self.columns = fmt, tuple(columns)


@dataclass(frozen=True)
class _Cell:
    column: Column
    x: str  # the value's SQL
    joined: str = ""  # a list's texts joined by ", "
    first: str = ""  # a list's first text


def _cells(element: record, compiler: SQLCompiler, **kw: Any) -> list[_Cell]:
    def cell(column: Column) -> _Cell:
        if column.kind != "list":
            return _Cell(column, compiler.process(column.expr, **kw))
        return _Cell(
            column,
            compiler.process(column.expr, **kw),
            joined=compiler.process(list_joined(column.expr, words(", ")), **kw),
            first=compiler.process(list_first(column.expr), **kw),
        )

    return [cell(column) for column in element.columns]


# -- SQLite: one printf builds the whole CSV record (one allocation per row, not one per cell); json_object.

# OWASP CSV injection: text starting with one of these is read as a formula by spreadsheets.
_FORMULA_CODES = ", ".join(str(ord(ch)) for ch in "=+-@\t\r")


def _guard_sqlite(first: str) -> str:
    """A quote mark when text starts like a formula (OWASP), else nothing; ``first`` is the text.

    A phone number or plain number (``+15551234567``, ``-2``) is left as it is: it calls nothing.
    """
    number = (
        f"unicode({first}) IN (43, 45) AND coalesce(unicode(substr({first}, 2)), 0) BETWEEN 48 AND 57"
        f" AND ltrim(substr({first}, 2), '0123456789 ().-') = ''"
    )
    return f"CASE WHEN unicode({first}) IN ({_FORMULA_CODES}) AND NOT ({number}) THEN '''' ELSE '' END"


def _csv_cell_sqlite(cell: _Cell) -> tuple[str, list[str]]:
    """The cell's printf format and arguments. Text is always quoted (RFC 4180): ``%w`` doubles
    the double quotes inside; an expensive value appears once, so SQLite evaluates it once."""
    kind, x = cell.column.kind, cell.x
    if kind == "money":
        return "%d.%02d", [f"{x} / 100", f"{x} % 100"]
    if kind in ("int", "plain"):
        return "%s", [f"coalesce({x}, '')"]
    if kind == "time":
        return "%s", [x]  # never NULL: built from a stored time
    if kind == "summary":
        return '"%w"', [x]  # starts with a quantity and is never NULL
    if kind == "list":
        guard = _guard_sqlite(cell.first)
        return "%s", [f"""CASE WHEN {x} = '[]' THEN '' ELSE printf('"%s%w"', {guard}, {cell.joined}) END"""]
    return '"%s%w"', [_guard_sqlite(x), f"coalesce({x}, '')"]


def _json_value_sqlite(kind: Kind, x: str) -> str:
    if kind == "money":
        return f"json(printf('%d.%02d', {x} / 100, {x} % 100))"
    if kind == "list":
        return f"json({x})"
    return x


@compiles(record, "sqlite")
def _record_sqlite(element: record, compiler: SQLCompiler, **kw: Any) -> str:
    cells = _cells(element, compiler, **kw)
    if element.fmt == "csv":
        parts = [_csv_cell_sqlite(cell) for cell in cells]
        pattern = ",".join(fmt for fmt, _ in parts)
        arguments = ",\n    ".join(arg for _, args in parts for arg in args)
        return f"printf('{pattern}' || char(13, 10),\n    {arguments})"
    pairs = (f"'{cell.column.name}', {_json_value_sqlite(cell.column.kind, cell.x)}" for cell in cells)
    line = "json_object(" + ", ".join(pairs)
    return line + (") || char(10)" if element.fmt == "jsonl" else ")")


# -- PostgreSQL: the same bytes by concatenation, sent as bytes (``convert_to``).

_FORMULA_STARTS = "'=', '+', '-', '@', chr(9), chr(13)"
_NUMBER = "'^[+-][0-9][0-9 ().-]*$'"


def _guard_pg(first: str) -> str:
    return f"CASE WHEN left({first}, 1) IN ({_FORMULA_STARTS}) AND {first} !~ {_NUMBER} THEN '''' ELSE '' END"


def _quoted_pg(text: str) -> str:
    return f"""replace({text}, '"', '""')"""


def _money_pg(x: str) -> str:
    return f"(({x}) / 100)::text || '.' || lpad(mod({x}, 100)::text, 2, '0')"


def _csv_cell_pg(cell: _Cell) -> str:
    kind, x = cell.column.kind, cell.x
    if kind == "money":
        return _money_pg(x)
    if kind in ("int", "plain"):
        return f"coalesce(({x})::text, '')"
    if kind == "time":
        return x
    if kind == "summary":
        return f"""'"' || {_quoted_pg(x)} || '"'"""
    if kind == "list":
        guard = _guard_pg(cell.first)
        return f"""CASE WHEN ({x})::text = '[]' THEN '' ELSE '"' || {guard} || {_quoted_pg(cell.joined)} || '"' END"""
    return f"""'"' || {_guard_pg(x)} || {_quoted_pg(f"coalesce({x}, '')")} || '"'"""


def _json_value_pg(kind: Kind, x: str) -> str:
    if kind == "money":
        return _money_pg(x)
    if kind == "int":
        return f"coalesce(({x})::text, 'null')"
    if kind == "list":
        values = "(SELECT '[' || string_agg(to_json(e.value)::text, ',' ORDER BY e.n) || ']'"
        values += f" FROM jsonb_array_elements_text(({x})::jsonb) WITH ORDINALITY AS e(value, n))"
        return f"CASE WHEN ({x})::text = '[]' THEN '[]' ELSE {values} END"
    return f"coalesce(to_json({x})::text, 'null')"


@compiles(record)
def _record_pg(element: record, compiler: SQLCompiler, **kw: Any) -> str:
    cells = _cells(element, compiler, **kw)
    if element.fmt == "csv":
        line = " || ',' || ".join(_csv_cell_pg(cell) for cell in cells) + " || chr(13) || chr(10)"
    else:
        parts = [
            f"""'{"{" if n == 0 else ","}"{cell.column.name}":' || {_json_value_pg(cell.column.kind, cell.x)}"""
            for n, cell in enumerate(cells)
        ]
        line = " || ".join(parts) + " || '}'" + (" || chr(10)" if element.fmt == "jsonl" else "")
    return f"convert_to({line}, 'UTF8')"
