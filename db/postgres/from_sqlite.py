"""Copy a live SQLite database into PostgreSQL: ``memory-agent migrate-to-postgres``.

The SQLite file is only read, in one read transaction (one consistent snapshot, while calls go
on). The target's schema is migrated first; then each table is copied in foreign-key order, in
batches: ``COPY`` into a temporary table, then inserted with the same ids (rows already there
are updated only if they changed). Each batch commits on its own, so an interrupted copy is
finished by running it again, and a second run over an unchanged file changes nothing. Rows
the file no longer has (a caller erased since the last run) are removed from the target.

The tables and columns copied are the schema's (``db.schema.models``): those both databases have, none computed.

The target records which file it was copied from (``memory_agent_import``) and how many rows
of each table that left (``memory_agent_import_rows``): it refuses a database that holds rows
from anywhere else, including rows its own workers wrote after the move.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from db.clock import utcnow_iso
from db.errors import DatabaseUnavailable, NotADatabase, RepositoryError
from db.safe_url import postgres_url, redact_url, scrub
from db.schema.models import SQLModel
from db.sqlite import migrate
from db.sqlite.reports import open_read_only

BATCH_ROWS = 5_000
IMPORT_TABLE = "memory_agent_import"
IMPORT_ROWS_TABLE = "memory_agent_import_rows"

_BOOKKEEPING = f"""
CREATE TABLE IF NOT EXISTS {IMPORT_TABLE} (
    source_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS {IMPORT_ROWS_TABLE} (
    table_name TEXT PRIMARY KEY,
    row_count BIGINT NOT NULL
);
"""


class ForeignTarget(RepositoryError):
    """The PostgreSQL database holds rows that were not copied from this SQLite file."""


@dataclass(frozen=True)
class TableCopy:
    """One table's copy: the rows in the snapshot, and what this run added, changed and removed."""

    table: str
    rows: int
    new: int
    changed: int
    removed: int
    finished: bool = True  # False: a batch of a table still being copied


@dataclass(frozen=True)
class CopyReport:
    source_id: str
    tables: tuple[TableCopy, ...]

    @property
    def new(self) -> int:
        return sum(t.new for t in self.tables)

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.tables)

    @property
    def removed(self) -> int:
        return sum(t.removed for t in self.tables)


@dataclass(frozen=True)
class _Table:
    name: str
    key: str  # the primary key column
    columns: tuple[str, ...]  # copied, in the target's order; the key first
    deferred: tuple[str, ...]  # references to a table copied later: filled in at the end
    parents: tuple[str, ...] = ()  # the other references (a row that moved to another parent is replaced)

    @property
    def copied_now(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.deferred)


def copy_to_postgres(
    sqlite_path: str | Path,
    url: str,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[TableCopy], None] | None = None,
) -> CopyReport:
    """Copy the memory-agent database at ``sqlite_path`` into the PostgreSQL database at ``url``.

    Raises ``NotADatabase`` for a missing or foreign source or a URL that is not PostgreSQL's,
    ``DatabaseUnavailable`` when the server cannot be reached or refuses, ``ForeignTarget`` when
    the target holds other data. ``progress`` hears of each batch as it commits (``finished``
    False, the counts so far) and of each table as it is done.
    """
    target_url = postgres_url(url)
    path = Path(sqlite_path)
    src = open_read_only(path)
    try:
        version = migrate.schema_version(src)
        if version != migrate.LATEST_VERSION:
            raise NotADatabase(
                f"{path} has schema version {version} and this memory-agent {migrate.LATEST_VERSION}:"
                " open it once with this version (any memory-agent command that writes, or the agent) to migrate it"
            )
        source_id = _source_id(src)
        try:
            with psycopg.connect(target_url, autocommit=True, connect_timeout=10) as pg:
                try:
                    _migrate(target_url)
                except RepositoryError as exc:
                    raise type(exc)(f"{redact_url(url)}: {exc}") from None
                return _copy(src, pg, source_id, str(path.resolve()), batch_rows, progress)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"PostgreSQL at {redact_url(url)}: {scrub(_one_line(exc), url)}") from None
        except psycopg.Error as exc:
            message = scrub(_one_line(exc), url)
            raise RepositoryError(f"PostgreSQL at {redact_url(url)} refused the copy: {message}") from None
    except sqlite3.Error as exc:
        raise NotADatabase(f"cannot read {path}: {exc}") from None
    finally:
        src.close()


def _copy(
    src: sqlite3.Connection,
    pg: psycopg.Connection[Any],
    source_id: str,
    source: str,
    batch_rows: int,
    progress: Callable[[TableCopy], None] | None,
) -> CopyReport:
    pg.execute(_BOOKKEEPING)
    # One copy at a time into a database; a second one waits here.
    pg.execute("SELECT pg_advisory_lock(hashtext(%s))", (IMPORT_TABLE,))
    try:
        src.execute("BEGIN")  # the snapshot: every read below sees the file as it is now
        tables = _tables(src)
        with pg.transaction():
            _claim(pg, tables, source_id, source)
        removed = {t.name: _remove_gone(src, pg, t, tables) for t in reversed(tables)}
        done = []
        for table in tables:
            copied = TableCopy(table.name, 0, 0, 0, removed[table.name], finished=False)
            for rows, new, changed in _upsert(src, pg, table, batch_rows):
                copied = replace(
                    copied, rows=copied.rows + rows, new=copied.new + new, changed=copied.changed + changed
                )
                if progress is not None:
                    progress(copied)
            done.append(replace(copied, finished=True))
            if progress is not None:
                progress(done[-1])
        for table in tables:
            if table.deferred:
                _fill_deferred(src, pg, table, batch_rows)
        with pg.transaction():
            for table in tables:
                _fix_sequence(pg, table)
            pg.execute(
                sql.SQL("UPDATE {} SET finished_at = %s WHERE source_id = %s").format(sql.Identifier(IMPORT_TABLE)),
                (utcnow_iso(), source_id),
            )
        return CopyReport(source_id, tuple(done))
    finally:
        if src.in_transaction:
            src.execute("COMMIT")
        with contextlib.suppress(psycopg.Error):  # a lost connection has let go of the lock already
            pg.execute("SELECT pg_advisory_unlock(hashtext(%s))", (IMPORT_TABLE,))


def _migrate(url: str) -> None:
    """The target's schema, brought to this version by the backend's own migrations."""
    from db.postgres import migrate as postgres

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10) as conn:
            await postgres.migrate(conn)

    asyncio.run(run())


def _source_id(src: sqlite3.Connection) -> str:
    """The file's identity: when its schema was first created, which copies and moves keep."""
    row = src.execute("SELECT applied_at FROM schema_migrations WHERE version = 1").fetchone()
    born = row[0] if row else ""
    return hashlib.sha256(f"memory-agent sqlite {born}".encode()).hexdigest()[:32]


# -- what to copy, in which order ---------------------------------------------------------------


def _tables(src: sqlite3.Connection) -> list[_Table]:
    """The schema's tables (``db.schema.models``) that both databases have, parents first, with their columns (none
    computed). Not copied: what the schema does not hold (the bookkeeping of migrations and of this copy,
    SQLite's full-text tables, which PostgreSQL replaces with its own indexes) and PostgreSQL's own tables."""
    schema = {
        table.name: table
        for table in SQLModel.metadata.tables.values()
        if "sqlite" in table.info.get("dialects", ("sqlite",))
    }
    source_tables = [
        name
        for (name,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
        if name in schema
    ]
    target_columns = {
        name: [(c.name, bool(c.nullable)) for c in table.columns if c.computed is None]
        for name, table in schema.items()
    }
    keys = {name: table.primary_key.columns[0].name for name, table in schema.items() if len(table.primary_key) == 1}
    references = {
        name: [(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys] for name, table in schema.items()
    }

    candidates: dict[str, tuple[str, tuple[str, ...], dict[str, bool]]] = {}
    for name in source_tables:
        if name not in target_columns:
            raise NotADatabase(f"the PostgreSQL schema has no table {name!r}: is it this memory-agent's?")
        if name not in keys:
            raise NotADatabase(f"table {name!r} has no single-column primary key in PostgreSQL")
        source_columns = {row[1] for row in src.execute(f'PRAGMA table_xinfo("{name}")') if row[6] == 0}
        nullable = dict(target_columns[name])
        columns = [keys[name], *(c for c, _ in target_columns[name] if c in source_columns and c != keys[name])]
        candidates[name] = (keys[name], tuple(columns), nullable)

    order: list[str] = []
    deferred: dict[str, list[str]] = {name: [] for name in candidates}
    remaining = list(candidates)  # the file's own order: a tie goes to the table created first
    while remaining:
        ready = [
            name
            for name in remaining
            if all(
                parent == name or parent not in remaining or column in deferred[name]
                for column, parent in references.get(name, [])
            )
        ]
        if not ready:
            # A cycle (customers and orders refer to each other): the first table whose pending
            # references may be empty for now goes first; they are filled in at the end.
            for name in remaining:
                pending = [(c, p) for c, p in references.get(name, []) if p in remaining and p != name]
                if all(candidates[name][2].get(c, False) for c, _ in pending):
                    deferred[name] += [c for c, _ in pending if c in candidates[name][1]]
                    ready = [name]
                    break
            else:
                raise NotADatabase("the PostgreSQL schema's foreign keys form a cycle that cannot be copied")
        for name in ready:
            order.append(name)
            remaining.remove(name)
    tables = []
    for name in order:
        key, copied, _ = candidates[name]
        late = tuple(dict.fromkeys(deferred[name]))
        parents = tuple(dict.fromkeys(c for c, _ in references.get(name, []) if c in copied and c not in late))
        tables.append(_Table(name, key, copied, late, parents))
    return tables


# -- refusing someone else's database ------------------------------------------------------------


def _claim(pg: psycopg.Connection[Any], tables: Sequence[_Table], source_id: str, source: str) -> None:
    """Take the target for this file, or refuse it: it must be empty, or hold only what we copied."""
    counts = {t.name: _count(pg, t.name) for t in tables}
    recorded = dict(
        pg.execute(sql.SQL("SELECT table_name, row_count FROM {}").format(sql.Identifier(IMPORT_ROWS_TABLE)))
    )
    owner = pg.execute(sql.SQL("SELECT source_id, source FROM {}").format(sql.Identifier(IMPORT_TABLE))).fetchall()
    holding = {name: n for name, n in counts.items() if n}
    if holding:
        example = ", ".join(f"{name} {n:,}" for name, n in list(holding.items())[:3])
        if not owner or owner[0][0] != source_id:
            raise ForeignTarget(
                f"the target database already holds data that was not copied from this file ({example} rows);"
                " copy into an empty database"
            )
        changed = {name: (n, recorded.get(name, 0)) for name, n in counts.items() if n != recorded.get(name, 0)}
        if changed:
            name, (n, copied) = next(iter(changed.items()))
            raise ForeignTarget(
                f"the target database has changed since it was copied from this file ({name}: {n:,} rows,"
                f" {copied:,} copied): it is in use; refusing to overwrite it"
            )
    else:
        pg.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(IMPORT_ROWS_TABLE)))
        pg.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(IMPORT_TABLE)))
    pg.execute(
        sql.SQL(
            "INSERT INTO {} (source_id, source, started_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (source_id) DO UPDATE SET source = excluded.source"
        ).format(sql.Identifier(IMPORT_TABLE)),
        (source_id, source, utcnow_iso()),
    )


def _count(pg: psycopg.Connection[Any], table: str) -> int:
    row = pg.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _record(pg: psycopg.Connection[Any], table: str, count: int, *, absolute: bool = False) -> None:
    """Keep the row count this copy leaves (``count`` more, or ``absolute``), in the transaction that changes it."""
    added = sql.SQL("" if absolute else "{}.row_count + ").format(sql.Identifier(IMPORT_ROWS_TABLE))
    pg.execute(
        sql.SQL(
            "INSERT INTO {} (table_name, row_count) VALUES (%s, %s)"
            " ON CONFLICT (table_name) DO UPDATE SET row_count = {}excluded.row_count"
        ).format(sql.Identifier(IMPORT_ROWS_TABLE), added),
        (table, count),
    )


# -- copying --------------------------------------------------------------------------------------


def _batches(src: sqlite3.Connection, query: str, size: int) -> Iterator[list[Any]]:
    cursor = src.execute(query)
    try:
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def _stage(
    pg: psycopg.Connection[Any], table: _Table, columns: Sequence[str], rows: Sequence[Any], *, role: str
) -> sql.Identifier:
    """``rows`` in a temporary table of ``columns`` (emptied at commit); returns its name."""
    stage = sql.Identifier(f"{role}_{table.name}")
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    pg.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA").format(
            stage, names, sql.Identifier(table.name)
        )
    )
    with pg.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, names)) as copy:
        for row in rows:
            copy.write_row(row)
    return stage


def _upsert(
    src: sqlite3.Connection, pg: psycopg.Connection[Any], table: _Table, batch_rows: int
) -> Iterator[tuple[int, int, int]]:
    """Insert the table's rows that are new and update the ones that changed; (rows, new, changed) per batch."""
    columns = table.copied_now
    target = sql.Identifier(table.name)
    names = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    chosen = sql.SQL(", ").join(
        sql.SQL("NULL") if c in table.deferred else sql.SQL("s.{}").format(sql.Identifier(c)) for c in table.columns
    )
    updated = [c for c in columns if c != table.key]
    if updated:
        mine = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in updated)
        theirs = sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in updated)
        sets = sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in updated)
        action: sql.Composable = sql.SQL("DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({})").format(
            sets, mine, theirs
        )
    else:
        action = sql.SQL("DO NOTHING")
    select = f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)} FROM "{table.name}" ORDER BY "{table.key}"'
    # Rows past the last id the target has (all of them into an empty table) cannot be there yet:
    # they are copied straight in; the others are compared through a staging table.
    found = pg.execute(sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(table.key), target)).fetchone()
    last = found[0] if found else None
    for batch in _batches(src, select, batch_rows):
        if last is None:
            known, fresh = [], batch
        elif isinstance(last, int):
            known, fresh = [r for r in batch if r[0] <= last], [r for r in batch if r[0] > last]
        else:
            known, fresh = batch, []
        inserted = changed = 0
        with pg.transaction():
            if fresh:
                names_now = sql.SQL(", ").join(map(sql.Identifier, columns))
                with pg.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names_now)) as copy:
                    for values in fresh:
                        copy.write_row(values)
                _record(pg, table.name, len(fresh))
            if known:
                inserted, changed = _upsert_batch(pg, table, known, names, chosen, action)
        yield len(batch), len(fresh) + inserted, changed


def _upsert_batch(
    pg: psycopg.Connection[Any],
    table: _Table,
    rows: Sequence[Any],
    names: sql.Composable,
    chosen: sql.Composable,
    action: sql.Composable,
) -> tuple[int, int]:
    """One batch through the staging table: (inserted, changed)."""
    stage = _stage(pg, table, table.copied_now, rows, role="stage")
    row = pg.execute(
        sql.SQL(
            "WITH written AS (INSERT INTO {target} AS t ({names}) SELECT {chosen} FROM {stage} AS s"
            " ON CONFLICT ({key}) {action} RETURNING xmax = 0 AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
        ).format(
            target=sql.Identifier(table.name),
            names=names,
            chosen=chosen,
            stage=stage,
            key=sql.Identifier(table.key),
            action=action,
        )
    ).fetchone()
    assert row is not None
    _record(pg, table.name, row[0])
    return int(row[0]), int(row[1])


def _remove_gone(src: sqlite3.Connection, pg: psycopg.Connection[Any], table: _Table, tables: Sequence[_Table]) -> int:
    """Remove the target's rows that the file no longer has (erased, purged), children first.

    A row whose id the file has given to another row since (SQLite reuses the highest ids once
    they are deleted) under another parent goes too, and comes back with the rest.
    """
    if _count(pg, table.name) == 0:
        return 0
    key = sql.Identifier(table.key)
    columns = (table.key, *table.parents)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    with pg.transaction():
        keys = sql.Identifier(f"keep_{table.name}")
        pg.execute(
            sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                keys, names, sql.Identifier(table.name)
            )
        )
        with pg.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(keys)) as copy:
            for row in src.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM "{table.name}"'):
                copy.write_row(row)
        pg.execute(sql.SQL("CREATE INDEX ON {} ({})").format(keys, key))
        same = sql.SQL("").join(
            sql.SQL(" AND k.{0} IS NOT DISTINCT FROM t.{0}").format(sql.Identifier(c)) for c in table.parents
        )
        gone = sql.SQL(
            "SELECT {key} FROM {table} AS t WHERE NOT EXISTS (SELECT 1 FROM {keys} AS k WHERE k.{key} = t.{key}{same})"
        ).format(key=key, table=sql.Identifier(table.name), keys=keys, same=same)
        # A reference filled in at the end may still point at a row about to go: let go of it first.
        for other in tables:
            for column in other.deferred:
                if _refers_to(other.name, column, table.name):
                    pg.execute(
                        sql.SQL("UPDATE {} SET {col} = NULL WHERE {col} IN ({gone})").format(
                            sql.Identifier(other.name), col=sql.Identifier(column), gone=gone
                        )
                    )
        deleted = pg.execute(sql.SQL("DELETE FROM {} WHERE {} IN ({})").format(sql.Identifier(table.name), key, gone))
        removed = deleted.rowcount
        if removed:  # a delete may cascade (order lines go with their order): count every table again
            for other in tables:
                _record(pg, other.name, _count(pg, other.name), absolute=True)
    return removed


def _refers_to(table: str, column: str, parent: str) -> bool:
    """``table.column`` refers to a row of ``parent`` (in the schema, ``db.schema.models``)."""
    return any(
        fk.parent.name == column and fk.column.table.name == parent
        for fk in SQLModel.metadata.tables[table].foreign_keys
    )


def _fill_deferred(src: sqlite3.Connection, pg: psycopg.Connection[Any], table: _Table, batch_rows: int) -> None:
    """Set the references left empty while their rows were not copied yet."""
    columns = (table.key, *table.deferred)
    mine = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in table.deferred)
    theirs = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in table.deferred)
    sets = sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in table.deferred)
    select = f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)} FROM "{table.name}" ORDER BY "{table.key}"'
    for rows in _batches(src, select, batch_rows):
        with pg.transaction():
            stage = _stage(pg, table, columns, rows, role="refs")
            pg.execute(
                sql.SQL(
                    "UPDATE {target} AS t SET {sets} FROM {stage} AS s"
                    " WHERE t.{key} = s.{key} AND ROW({mine}) IS DISTINCT FROM ROW({theirs})"
                ).format(
                    target=sql.Identifier(table.name),
                    sets=sets,
                    stage=stage,
                    key=sql.Identifier(table.key),
                    mine=mine,
                    theirs=theirs,
                )
            )


def _fix_sequence(pg: psycopg.Connection[Any], table: _Table) -> None:
    """The next id the target hands out comes after the copied ones."""
    row = pg.execute("SELECT pg_get_serial_sequence(%s, %s)", (sql.Identifier(table.name).as_string(pg), table.key))
    found = row.fetchone()
    if not found or found[0] is None:
        return
    pg.execute(
        sql.SQL("SELECT setval(%s, coalesce(max({key}), 1), max({key}) IS NOT NULL) FROM {table}").format(
            key=sql.Identifier(table.key), table=sql.Identifier(table.name)
        ),
        (found[0],),
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
