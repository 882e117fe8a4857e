"""Statements compiled once per dialect, and the few constructs in which SQLite and PostgreSQL differ.

``compiled(statement, dialect)`` gives the SQL text with named placeholders that the backend's driver
takes with a dict of values (``:name`` for sqlite3, ``%(name)s`` for psycopg): each ``bindparam(name)``
is one, and a value written in the statement (``status == "placed"``, ``limit(10)``) is written into
its SQL. A statement that depends on its dialect (an upsert) is a function of it: ``compiled(build,
dialect)`` calls it once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from sqlalchemy import ClauseList, ColumnElement, Insert, bindparam, literal, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect as SaDialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.schema import ScalarElementColumnDefault, Table
from sqlmodel import SQLModel

Dialect = Literal["sqlite", "postgresql"]


def _with_values_written_in(dialect: SaDialect) -> SaDialect:
    """``dialect``, whose compiler writes a value given in the statement into its SQL, as a literal: only the
    named ``bindparam``s the caller fills are placeholders."""
    base: type[SQLCompiler] = dialect.statement_compiler

    class Compiler(base):  # type: ignore[valid-type,misc]
        def visit_bindparam(self, bindparam: BindParameter[Any], **kw: Any) -> str:
            if not bindparam.required and bindparam.callable is None and not bindparam.expanding:
                kw["literal_binds"] = True
            return str(super().visit_bindparam(bindparam, **kw))

    dialect.statement_compiler = Compiler
    return dialect


_DIALECTS: dict[str, SaDialect] = {
    "sqlite": _with_values_written_in(sqlite.pysqlite.dialect(paramstyle="named")),
    # pyformat placeholders without casts, which psycopg 3 takes as they are
    "postgresql": _with_values_written_in(postgresql.psycopg2.dialect()),
}

Statement = ClauseElement | Callable[[Dialect], ClauseElement]


@cache
def compiled(statement: Statement, dialect: Dialect) -> str:
    """The SQL text of ``statement`` (or of ``statement(dialect)``) in ``dialect``, compiled once."""
    element = statement if isinstance(statement, ClauseElement) else statement(dialect)
    if isinstance(element, Insert):
        element = _with_defaults(element)
    return str(element.compile(dialect=_DIALECTS[dialect]))


def _with_defaults(insert: Insert) -> Insert:
    """``insert`` with the models' defaults written in (unless it inserts from a SELECT), and no RETURNING it
    does not ask for."""
    given = {getattr(key, "key", key) for key in insert._values or {}}
    table = insert.table
    assert isinstance(table, Table)
    defaults = {
        column.key: _constant(column.default.arg)
        for column in table.columns
        if isinstance(column.default, ScalarElementColumnDefault) and column.key not in given
    }
    if insert.select is not None:  # from a SELECT: its columns are the ones it names
        defaults = {}
    element = insert.values(defaults) if defaults else insert
    return element if element._returning else element.inline()


def _constant(value: object) -> ColumnElement[Any]:
    """A default written into the statement: the models' are numbers and words."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"a column default of type {type(value).__name__} cannot be written into SQL")
    return literal_column(str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'")


def table(model: type[SQLModel]) -> Table:
    """The table of a table model (``db.schema.models``' ``*Row`` classes)."""
    found = getattr(model, "__table__", None)
    if not isinstance(found, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return found


def upsert(table: Table, dialect: Dialect) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can take ``on_conflict_do_update``/``on_conflict_do_nothing`` in ``dialect``."""
    insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return insert(table)


def _written(construct: type[FunctionElement[Any]], *, sqlite: str, postgresql: str) -> None:
    """``construct`` in each dialect: a template of its arguments' SQL (``{0}``, ``{1}``...)."""

    def writer(template: str) -> Callable[..., str]:
        def write(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
            return template.format(*(compiler.process(clause, **kw) for clause in element.clauses))

        return write

    compiles(construct, "sqlite")(writer(sqlite))
    compiles(construct)(writer(postgresql))


class greatest(FunctionElement[Any]):  # noqa: N801  (named as the SQL function it is)
    """The larger of two values: ``max(a, b)`` in SQLite, ``greatest(a, b)`` in PostgreSQL."""

    name = "greatest"
    inherit_cache = True


_written(greatest, sqlite="max({0}, {1})", postgresql="greatest({0}, {1})")


def compiled_now(statement: ClauseElement, dialect: Dialect) -> str:
    """The SQL text of a statement built for one use (its shape depends on the request), not kept."""
    return str(statement.compile(dialect=_DIALECTS[dialect]))


def words(text: str) -> ColumnElement[Any]:
    """A constant text written into the statement (not a placeholder), as SQL quotes it."""
    return literal_column("'" + text.replace("'", "''") + "'")


class bytewise(FunctionElement[Any]):  # noqa: N801
    """Text compared byte by byte: as SQLite always does; in PostgreSQL, in the "C" collation."""

    inherit_cache = True


_written(bytewise, sqlite="{0}", postgresql='({0}) COLLATE "C"')


class list_joined(FunctionElement[Any]):  # noqa: N801
    """The texts of a JSON list (stored as text), in their order, joined by a separator: ``list_joined(x, sep)``."""

    inherit_cache = True


_written(
    list_joined,
    sqlite="(SELECT group_concat(value, {1}) FROM json_each({0}))",
    postgresql="(SELECT string_agg(e.value, {1} ORDER BY e.n)"
    " FROM jsonb_array_elements_text(({0})::jsonb) WITH ORDINALITY AS e(value, n))",
)


class list_first(FunctionElement[Any]):  # noqa: N801
    """The first text of a JSON list (stored as text); NULL for an empty list."""

    inherit_cache = True


_written(list_first, sqlite="json_extract({0}, '$[0]')", postgresql="(({0})::jsonb ->> 0)")


class at_offset(FunctionElement[Any]):  # noqa: N801
    """A stored UTC time as ISO 8601 local time at a UTC offset, to the second: ``at_offset(x, '-05:00')``
    gives ``2025-01-31T09:30:00-05:00``. The offset is written into the statement (it is not a value)."""

    inherit_cache = False

    def __init__(self, x: ColumnElement[Any], offset: str) -> None:
        if not re.fullmatch(r"[+-]\d\d:\d\d(:\d\d)?", offset):
            raise ValueError(f"not a UTC offset: {offset!r}")
        self.offset = offset
        super().__init__(x)


@compiles(at_offset, "sqlite")
def _at_offset_sqlite(element: at_offset, compiler: SQLCompiler, **kw: Any) -> str:
    x, offset = compiler.process(element.clauses, **kw), element.offset
    return f"strftime('%Y-%m-%dT%H:%M:%S', substr({x}, 1, 19), '{offset}') || '{offset}'"


@compiles(at_offset)
def _at_offset(element: at_offset, compiler: SQLCompiler, **kw: Any) -> str:
    x, offset = compiler.process(element.clauses, **kw), element.offset
    return f"""(to_char(left({x}, 19)::timestamp + interval '{offset}', 'YYYY-MM-DD"T"HH24:MI:SS') || '{offset}')"""


class string_agg(FunctionElement[str]):  # noqa: N801  (named as the SQL function it is)
    """The texts of a group joined by ``separator`` in the order of ``order_by``: ``string_agg(... ORDER BY ...)``
    in PostgreSQL, ``group_concat`` in SQLite, which takes the order of the rows it is given: aggregate over a
    subquery ordered the same way."""

    name = "string_agg"
    inherit_cache = False

    def __init__(self, text: ColumnElement[Any], separator: str, *, order_by: ColumnElement[Any]) -> None:
        self.order_by = ClauseList(order_by)
        super().__init__(text, literal(separator))


@compiles(string_agg, "sqlite")
def _string_agg_sqlite(element: string_agg, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)})"


@compiles(string_agg)
def _string_agg(element: string_agg, compiler: SQLCompiler, **kw: Any) -> str:
    clauses, order = compiler.process(element.clauses, **kw), compiler.process(element.order_by, **kw)
    return f"string_agg({clauses} ORDER BY {order})"


class json_rows(FunctionElement[str]):  # noqa: N801  (named as what it gives)
    """The rows of a group as the text of a JSON array of arrays (one per row, of ``values``) in the order of
    ``order_by``: ``json_agg(json_build_array(...) ORDER BY ...)`` in PostgreSQL, ``json_group_array(json_array(
    ...))`` in SQLite, which takes the order of the rows it is given: aggregate over a subquery ordered the same
    way."""

    name = "json_rows"
    inherit_cache = False

    def __init__(self, *values: ColumnElement[Any], order_by: tuple[ColumnElement[Any], ...]) -> None:
        self.order_by = ClauseList(*order_by)
        super().__init__(*values)


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows)
def _json_rows(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    values, order = compiler.process(element.clauses, **kw), compiler.process(element.order_by, **kw)
    return f"json_agg(json_build_array({values}) ORDER BY {order})::text"


class in_list(FunctionElement[bool]):  # noqa: N801
    """``column`` is one of the values of a JSON list given as one value (``json.dumps([...])``): a list of any
    length is one placeholder, so the statement is compiled once. ``numbers``: the list holds integers."""

    inherit_cache = False

    def __init__(self, column: ColumnElement[Any], name: str, *, numbers: bool = False) -> None:
        self.numbers = numbers
        super().__init__(column, bindparam(name))


@compiles(in_list, "sqlite")
def _in_list_sqlite(element: in_list, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = (compiler.process(c, **kw) for c in element.clauses)
    return f"{column} IN (SELECT value FROM json_each({values}))"


@compiles(in_list)
def _in_list(element: in_list, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = (compiler.process(c, **kw) for c in element.clauses)
    value = "value::bigint" if element.numbers else "value"
    return f"{column} IN (SELECT {value} FROM jsonb_array_elements_text(({values})::jsonb))"
