"""A write with decisions in between, written once: a plan that yields its statements and is sent their answers.

A plan is a generator of ``Step``s: a statement (compiled once per dialect), its values, and what the plan
wants back: nothing, one row, every row, the row count, or a ``later`` handle whose row a ``Read`` step
fetches when the plan needs it. It holds no connection and does no I/O, so one plan serves both backends,
each run by its driver the way that was measured fastest:

- ``run_sqlite``: sqlite3 on SQLite's writer thread, inside the transaction ``db.sqlite.connection.Writer`` opened
  (the whole write is one hop to that thread);
- ``run_postgres``: psycopg, on a connection the repository may have put in pipeline mode: a step whose
  answer nothing waits for is only sent, and ``later`` sends a statement now and reads its row when the plan
  asks, so two statements travel before either answer is awaited.

``Parts`` makes the parts of a write stand alone (``careful``): each runs in a SAVEPOINT, and a statement
the database rejects (``StatementFailed``, thrown into the plan; pipelined, possibly at a later step)
leaves that part out and keeps the rest. The database refusing (locked, gone, out of memory) is never
thrown in: it ends the write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import sqlalchemy as sa

from db.errors import RepositoryError
from db.statements.sql import Dialect, Statement, compiled

if TYPE_CHECKING:
    import psycopg

_T = TypeVar("_T")

Values = Mapping[str, Any]
Want = Literal["nothing", "one", "all", "count", "later"]


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan: its values (a list of them with ``many``), what the plan wants back, and
    the one dialect it is for (``only``; the other's runner answers None without running it)."""

    statement: Statement
    values: Values | Sequence[Values] = field(default_factory=dict)
    want: Want = "nothing"
    many: bool = False
    only: Dialect | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """Fetch the row of a step sent earlier with ``want="later"`` (its answer is the ``handle``)."""

    handle: Any


Plan: TypeAlias = Generator[Step | Read, Any, _T]


def execute(statement: Statement, values: Values | None = None, *, only: Dialect | None = None) -> Step:
    """A statement whose answer nothing waits for."""
    return Step(statement, values or {}, only=only)


def one(statement: Statement, values: Values | None = None) -> Step:
    """A statement whose first row (a tuple, or None) the plan reads."""
    return Step(statement, values or {}, "one")


def every(statement: Statement, values: Values | None = None) -> Step:
    """A statement whose rows the plan reads."""
    return Step(statement, values or {}, "all")


def count(statement: Statement, values: Values | None = None) -> Step:
    """A statement whose row count the plan reads."""
    return Step(statement, values or {}, "count")


def later(statement: Statement, values: Values | None = None) -> Step:
    """A statement sent now whose first row the plan reads later, with ``Read(handle)``."""
    return Step(statement, values or {}, "later")


def many(statement: Statement, rows: Sequence[Values]) -> Step:
    """One statement for each of ``rows``; nothing is sent for none."""
    return Step(statement, rows, many=True)


# -- parts that stand alone -----------------------------------------------------------------------


class StatementFailed(RepositoryError):
    """The database rejected a statement of a plan (a constraint, a value it cannot take). ``description``
    leaves out the values it quotes, which may be what a caller said."""

    def __init__(self, description: str) -> None:
        super().__init__(f"database refused the write: {description}")
        self.description = description


SAVEPOINT = execute(sa.text("SAVEPOINT part"))
ROLLBACK_TO = execute(sa.text("ROLLBACK TO SAVEPOINT part"))
RELEASE = execute(sa.text("RELEASE SAVEPOINT part"))


class Parts:
    """The parts of one write; with ``careful``, each in a SAVEPOINT of its own, and one that fails is left
    out (named in ``skipped``) while the rest is kept."""

    def __init__(self, careful: bool) -> None:
        self.careful = careful
        self.skipped: list[str] = []

    def part(self, what: str, steps: Plan[None]) -> Plan[None]:
        """``steps``, which stand or fall together."""
        if not self.careful:
            yield from steps
            return
        yield SAVEPOINT
        try:
            yield from steps
        except Exception as exc:  # noqa: BLE001  (this part is left out; the rest is kept)
            yield ROLLBACK_TO
            self.skipped.append(f"{what}: {describe(exc)}")
        yield RELEASE


def describe(exc: BaseException) -> str:
    """An error in a line without the values it quotes (they may be what a caller said)."""
    if isinstance(exc, StatementFailed):
        return exc.description
    diag = getattr(exc, "diag", None)  # psycopg's: the server's own words, without its detail line
    if diag is not None and diag.message_primary:
        return f"{diag.sqlstate or type(exc).__name__}: {diag.message_primary}"
    if isinstance(exc, sqlite3.Error):  # SQLite names the constraint or column, never the value
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


# -- running a plan ---------------------------------------------------------------------------------

# The database refusing, rather than rejecting one statement: no part would fare better.
SQLITE_REFUSALS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, MemoryError)


def run_sqlite(db: sqlite3.Connection, plan: Plan[_T]) -> _T:
    """Carry out ``plan`` on ``db`` (in the transaction already open), in this thread."""
    answer: Any = None
    failed: StatementFailed | None = None
    while True:
        try:
            step = plan.send(answer) if failed is None else plan.throw(failed)
        except StopIteration as done:
            return done.value
        try:
            answer, failed = _answer_sqlite(db, step), None
        except SQLITE_REFUSALS:
            plan.close()
            raise
        except Exception as exc:  # noqa: BLE001  (thrown into the plan, which may leave its part out)
            answer, failed = None, _failed(exc)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A ``later`` row on SQLite, read at once: the writer thread is the only hop."""

    row: Any


def _answer_sqlite(db: sqlite3.Connection, step: Step | Read) -> Any:
    if isinstance(step, Read):
        return step.handle.row
    if step.only not in (None, "sqlite"):
        return None
    sql = compiled(step.statement, "sqlite")
    if step.many:
        if step.values:
            db.executemany(sql, step.values)
        return None
    cursor = db.execute(sql, step.values)
    if step.want == "later":
        return _Fetched(cursor.fetchone())
    if step.want == "one":
        return cursor.fetchone()
    if step.want == "all":
        return cursor.fetchall()
    return cursor.rowcount if step.want == "count" else None


async def run_postgres(conn: psycopg.AsyncConnection[Any], plan: Plan[_T]) -> _T:
    """Carry out ``plan`` on ``conn`` (in the transaction already open, pipelined or not)."""
    import psycopg

    refusals = (psycopg.OperationalError, psycopg.InterfaceError, MemoryError)
    answer: Any = None
    failed: StatementFailed | None = None
    while True:
        try:
            step = plan.send(answer) if failed is None else plan.throw(failed)
        except StopIteration as done:
            return done.value
        try:
            answer, failed = await _answer_postgres(conn, step), None
        except refusals:
            plan.close()
            raise
        except Exception as exc:  # noqa: BLE001  (thrown into the plan, which may leave its part out)
            answer, failed = None, _failed(exc)


async def _answer_postgres(conn: psycopg.AsyncConnection[Any], step: Step | Read) -> Any:
    if isinstance(step, Read):
        return await step.handle.fetchone()
    if step.only not in (None, "postgresql"):
        return None
    sql = compiled(step.statement, "postgresql")
    if step.many:
        if step.values:
            async with conn.cursor() as cur:
                await cur.executemany(sql, step.values)
        return None
    if step.want == "count" and conn.info.pipeline_status:
        async with conn.pipeline():  # a nested pipeline syncs at its end: the count is known
            cursor = await conn.execute(sql, step.values)
        return cursor.rowcount
    cursor = await conn.execute(sql, step.values)
    if step.want == "later":  # sent; its row is read when the plan asks
        return cursor
    if step.want == "one":
        return await cursor.fetchone()
    if step.want == "all":
        return await cursor.fetchall()
    return cursor.rowcount if step.want == "count" else None


def _failed(exc: Exception) -> StatementFailed:
    failed = StatementFailed(describe(exc))
    failed.__cause__ = exc
    return failed


# -- PostgreSQL's lock on a caller's number ------------------------------------------------------------

# With a hash of the number, the key of the advisory lock that an erasure takes alone and the calls
# from that number share (two keys: apart from the migration's one-key lock).
NUMBER_LOCK = 0x4D454D41
_SHARED = sa.text(f"SELECT pg_advisory_xact_lock_shared({NUMBER_LOCK}, hashtext(:number))")
_ALONE = sa.text(f"SELECT pg_advisory_xact_lock({NUMBER_LOCK}, hashtext(:number))")


def number_lock(number: str, *, shared: bool) -> Step:
    """PostgreSQL's lock on the number ``number`` until the transaction ends: ``shared`` by the calls from it,
    taken alone by its erasure. SQLite's writer holds the whole database's lock already: nothing is run there."""
    return execute(_SHARED if shared else _ALONE, {"number": number}, only="postgresql")
