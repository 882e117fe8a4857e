"""Statements compiled once per dialect, and the few constructs in which SQLite and PostgreSQL differ.

``compiled(statement, dialect)`` gives the SQL text with named placeholders that the backend's driver
takes with a dict of values (``:name`` for sqlite3, ``%(name)s`` for psycopg). A statement that depends
on its dialect (an upsert) is a function of it: ``compiled(build, dialect)`` calls it once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from sqlalchemy import ColumnElement, Insert, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect as SaDialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.schema import ScalarElementColumnDefault, Table
from sqlmodel import SQLModel

Dialect = Literal["sqlite", "postgresql"]

_DIALECTS: dict[str, SaDialect] = {
    "sqlite": sqlite.pysqlite.dialect(paramstyle="named"),
    # pyformat placeholders without casts, which psycopg 3 takes as they are
    "postgresql": postgresql.psycopg2.dialect(),
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
    """``insert`` with the models' defaults written in, and no RETURNING it does not ask for."""
    given = {getattr(key, "key", key) for key in insert._values or {}}
    table = insert.table
    assert isinstance(table, Table)
    defaults = {
        column.key: _constant(column.default.arg)
        for column in table.columns
        if isinstance(column.default, ScalarElementColumnDefault) and column.key not in given
    }
    element = insert.values(defaults) if defaults else insert
    return element if element._returning else element.inline()


def _constant(value: object) -> ColumnElement[Any]:
    """A default written into the statement: the models' are numbers and words."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"a column default of type {type(value).__name__} cannot be written into SQL")
    return literal_column(str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'")


def table(model: type[SQLModel]) -> Table:
    """The table of a table model (``db.models``' ``*Row`` classes)."""
    found = getattr(model, "__table__", None)
    if not isinstance(found, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return found


def upsert(table: Table, dialect: Dialect) -> Insert:
    """An INSERT that can take ``on_conflict_do_update``/``on_conflict_do_nothing`` in ``dialect``."""
    insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return insert(table)


class greatest(FunctionElement[Any]):  # noqa: N801  (named as the SQL function it is)
    """The larger of two values: ``max(a, b)`` in SQLite, ``greatest(a, b)`` in PostgreSQL."""

    name = "greatest"
    inherit_cache = True


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(greatest)
def _greatest(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"greatest({compiler.process(element.clauses, **kw)})"
