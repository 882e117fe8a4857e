"""The schema is the models: Alembic brings every database to them, and upgrades old ones in place with nothing lost."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect
from sqlmodel import SQLModel

from conftest import rows
from db import SchemaTooNew, open_repository
from db.postgres import migrate as postgres
from db.schema import alembic as schema
from db.schema import views
from db.schema.alembic import legacy, schema_objects
from db.sqlite import migrate

FIXTURES = Path(__file__).parent / "fixtures"
TABLES = ("customers", "calls", "orders", "order_items", "feedback", "messages")


@contextmanager
def connected(target: str | Path) -> Iterator[Connection]:
    """A SQLAlchemy connection to a SQLite file or a PostgreSQL URL, for Alembic's comparison."""
    if isinstance(target, Path):
        engine = create_engine(f"sqlite:///{target}")
    else:
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(str(target)))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def differences(connection: Connection) -> list[Any]:
    """Alembic's comparison of the database with the models (types, nullability, server defaults, keys, indexes),
    less what SQLite's reflection cannot read (``unreadable_on_sqlite``)."""
    dialect = connection.dialect.name
    context = MigrationContext.configure(
        connection,
        opts={"include_object": schema_objects(dialect), "compare_type": True, "compare_server_default": True},
    )
    found = compare_metadata(context, SQLModel.metadata)
    return [diff for diff in found if not (dialect == "sqlite" and unreadable_on_sqlite(diff, found))]


def unreadable_on_sqlite(diff: Any, found: list[Any]) -> bool:
    """What SQLAlchemy cannot read back from SQLite, each checked some other way:

    - an integer key's identity: on SQLite the key is the rowid, which has no default to read;
    - ``ON DELETE`` of a foreign key declared on its column (SQLAlchemy reads it from table-level clauses only):
      a foreign key "removed" and "added" again with the same columns; see ``test_sqlite_deletes_cascade_...``;
    - ``calls.id`` NOT NULL: SQLite lets a key that is not an integer hold NULL unless told not to, and the
      first migration did not say it (PostgreSQL's key is NOT NULL, as the model has it; no call has a NULL id).
    """
    op = diff[0] if isinstance(diff, list) else diff
    if op[0] == "modify_default" and type(op[-1]).__name__ == "Identity":
        return True
    if op[0] == "modify_nullable" and op[2:4] == ("calls", "id"):
        return True
    if op[0] in ("remove_fk", "add_fk"):
        other = "add_fk" if op[0] == "remove_fk" else "remove_fk"
        return any(
            not isinstance(d, list) and d[0] == other and _fk_signature(d[1]) == _fk_signature(op[1]) for d in found
        )
    return False


def _fk_signature(fk: Any) -> tuple[str, tuple[str, ...], str]:
    return fk.table.name, tuple(c.name for c in fk.columns), fk.referred_table.name


def test_a_new_sqlite_database_is_the_models(db_path):
    sqlite3.connect(db_path).close()
    migrate.migrate(sqlite3.connect(db_path, isolation_level=None))

    with connected(db_path) as connection:
        assert differences(connection) == []
        assert views.up_to_date(connection)
    assert rows(db_path, "SELECT version_num FROM alembic_version") == [(f"{migrate.LATEST_VERSION:04d}",)]


async def test_a_new_postgres_database_is_the_models(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path):
        pass

    with connected(pg_url) as connection:
        assert differences(connection) == []
        assert views.up_to_date(connection)


async def test_sqlite_deletes_cascade_where_the_models_say(repo, db_path):
    conn = sqlite3.connect(db_path)
    for table in SQLModel.metadata.tables.values():
        if table.info.get("dialects"):
            continue
        declared = {(fk.parent.name, fk.ondelete or "NO ACTION") for fk in table.foreign_keys}
        found = {(row[3], row[6]) for row in conn.execute(f"PRAGMA foreign_key_list({table.name})")}
        assert found == declared, table.name
    conn.close()


def test_revisions_are_numbered_on_from_the_old_schema_versions():
    files = sorted(p.name for p in (Path(schema.__file__).parent / "versions").glob("*.py"))
    assert all(re.fullmatch(r"v\d{4}_\w+\.py", name) for name in files), files
    assert schema.head() == f"{migrate.LATEST_VERSION:04d}" == files[-1][1:5]
    assert migrate.LATEST_VERSION >= legacy.SQLITE[-1].version


async def test_a_sqlite_file_at_version_6_upgrades_in_place_with_its_rows(tmp_path):
    path = tmp_path / "memory.db"
    shutil.copyfile(FIXTURES / "schema_v6.db", path)
    counts = {table: rows(path, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}
    assert rows(path, "SELECT max(version) FROM schema_migrations") == [(6,)]

    async with open_repository(path, spool_dir=tmp_path) as repo:
        memory = await repo.recall("+15551234567")

    assert {table: rows(path, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES} == counts
    assert memory is not None and memory.name == "Maria" and memory.lifetime_spend_cents == 3650
    assert rows(path, "SELECT name, modifications FROM order_items WHERE order_id = 1 ORDER BY position") == [
        ("Margherita Pizza", '["extra basil"]'),
        ("Tiramisu", "[]"),
    ]
    assert rows(
        path,
        "SELECT content FROM messages WHERE id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'hi')",
    ) == [("Hi, I'm Maria",)]
    assert rows(path, "SELECT scope FROM erasures") == []
    # columns of later versions, with their defaults: the fixture's rows predate households
    assert rows(path, "SELECT llm_requests, caller_number FROM calls WHERE id = 'call-1'") == [(0, None)]
    assert rows(path, "SELECT max(version) FROM schema_migrations") == [(legacy.SQLITE[-1].version,)]
    with connected(path) as connection:
        assert differences(connection) == []


async def test_a_postgres_database_at_version_2_upgrades_in_place_with_its_rows(pg_url, tmp_path):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute((FIXTURES / "postgres_v2.sql").read_text())

    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        memory = await repo.recall("+15551234567")

    assert memory is not None and memory.name == "Maria" and memory.last_rating == 2
    assert [(fact.kind, fact.topic) for fact in memory.facts] == [("allergy", "peanuts")]
    assert [(i.menu_item, i.quantity) for i in memory.last_order_items] == [("margherita_pizza", 2), ("tiramisu", 1)]
    with psycopg.connect(pg_url) as conn:
        counted = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (*TABLES, "worker_hosts")}  # type: ignore[index]
        assert counted == {
            "customers": 2,
            "calls": 3,
            "orders": 2,
            "order_items": 3,
            "feedback": 1,
            "messages": 3,
            "worker_hosts": 1,
        }
        assert conn.execute("SELECT kitchen_note FROM orders WHERE id = 1").fetchall() == [("allergy: peanuts",)]
        assert conn.execute("SELECT scope, counts FROM erasures").fetchall() == [("number", '{"calls": 1}')]
        assert conn.execute("SELECT customer, spend_cents FROM customer_summary ORDER BY 1").fetchall() == [
            ("Dàvid ✓ (web-7f3a)", 0),
            ("Maria (+15551234567)", 3650),
        ]
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, postgres.LEGACY_VERSION + 1)]
        new_customer = conn.execute(
            "INSERT INTO customers (participant_identity, created_at, last_seen_at)"
            " VALUES ('x', 'now', 'now') RETURNING id"
        ).fetchone()
        assert new_customer == (3,)  # the identity goes on after the rows that were there
        conn.rollback()
    with connected(pg_url) as connection:
        assert differences(connection) == []


_MIGRATE = """
import sqlite3, sys
from db.sqlite import migrate
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout = 60000")
print(migrate.migrate(conn))
"""


def test_sqlite_processes_migrating_at_once_migrate_once(db_path):
    sqlite3.connect(db_path).close()

    running = [
        subprocess.Popen([sys.executable, "-c", _MIGRATE, str(db_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [process.communicate()[0] for process in running]

    assert [process.returncode for process in running] == [0, 0, 0]
    assert outputs == [f"{migrate.LATEST_VERSION}\n"] * 3
    assert rows(db_path, "SELECT version FROM schema_migrations ORDER BY 1") == [(m.version,) for m in legacy.SQLITE]
    assert rows(db_path, "SELECT version_num FROM alembic_version") == [(f"{migrate.LATEST_VERSION:04d}",)]


async def test_a_postgres_database_from_a_newer_version_is_refused(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path):
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (f"{migrate.LATEST_VERSION + 1:04d}",))

    with pytest.raises(SchemaTooNew) as refused:
        async with open_repository(pg_url, spool_dir=tmp_path):
            pass

    assert f"version {migrate.LATEST_VERSION + 1} is newer than this code supports" in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_view_changed_in_its_text_is_created_again_at_the_next_open(backend, tmp_path, monkeypatch, request):
    target: str | Path = tmp_path / "memory.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    async with open_repository(target, spool_dir=tmp_path):
        pass
    daily = views.VIEWS["daily_sales"]
    monkeypatch.setitem(
        views.VIEWS, "daily_sales", daily.replace("count(*) AS orders,", "count(*) AS orders, 1 AS one,")
    )

    async with open_repository(target, spool_dir=tmp_path):
        pass

    with connected(target) as connection:
        assert views.up_to_date(connection)
        assert "one" in connection.exec_driver_sql("SELECT * FROM daily_sales").keys()


def checks(connection: Connection, schema_name: str | None = None) -> dict[str, set[str]]:
    """Every table's CHECK constraints as the database reads them back, whitespace aside."""
    inspector = inspect(connection)
    return {
        table: {" ".join(c["sqltext"].split()) for c in inspector.get_check_constraints(table, schema=schema_name)}
        for table in inspector.get_table_names(schema=schema_name)
        if table in SQLModel.metadata.tables
    }


async def test_sqlite_checks_are_the_models(repo, db_path):
    scratch = create_engine("sqlite://")
    SQLModel.metadata.create_all(scratch)  # the models' own DDL, for SQLite
    with scratch.connect() as models, connected(db_path) as migrated:
        declared = checks(models)
        assert checks(migrated) == {table: found for table, found in declared.items() if table != "worker_hosts"}
        assert declared["order_items"] == {
            "quantity BETWEEN 1 AND 20",
            "unit_price_cents >= 0",
            "json_valid(modifications)",
            "json_valid(accepted_allergens)",
        }


async def test_postgres_checks_are_the_models(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path):
        pass
    with connected(pg_url) as connection:
        connection.exec_driver_sql("CREATE SCHEMA models")
        connection.exec_driver_sql("SET search_path TO models")
        SQLModel.metadata.create_all(connection)  # the models' own DDL, for PostgreSQL, beside the migrated tables
        connection.exec_driver_sql("SET search_path TO public")
        declared = checks(connection, "models")
        assert checks(connection) == declared
        assert declared["order_items"] == {
            "quantity >= 1 AND quantity <= 20",
            "unit_price_cents >= 0",
            "modifications::json IS NOT NULL",
            "accepted_allergens::json IS NOT NULL",
        }
        connection.rollback()


def test_search_triggers_a_revision_dropped_with_their_table_are_created_again(db_path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate.migrate(conn)
    # what SQLite's batch mode does to a table it copies: its triggers go with it
    conn.executescript("DROP TRIGGER messages_ai; DROP TRIGGER messages_au;")
    conn.execute("INSERT INTO calls (id, started_at) VALUES ('c', '2026-01-01T00:00:00+00:00')")
    conn.execute(
        "INSERT INTO messages (call_id, seq, role, content, created_at) VALUES ('c', 1, 'user', 'cold pizza', 'x')"
    )
    conn.close()

    with connected(db_path) as connection:
        schema.upgrade(connection)
        connection.commit()

    triggers = {row[0] for row in rows(db_path, "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"messages_ai", "messages_au", "messages_ad"} <= triggers
    assert rows(db_path, "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'pizza'") == [(1,)]


def test_a_file_another_process_is_writing_waits_then_fails_with_sqlites_own_error(tmp_path):
    path = tmp_path / "memory.db"
    shutil.copyfile(FIXTURES / "schema_v10.db", path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 50")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        migrate.migrate(conn)  # what db.sqlite.connection.prepare turns into its one-line error

    writer.rollback()
    writer.close()
    assert migrate.migrate(conn) == migrate.LATEST_VERSION
    conn.close()
    assert rows(path, "SELECT version_num FROM alembic_version") == [(f"{migrate.LATEST_VERSION:04d}",)]


def test_an_installed_package_carries_every_revision():
    # versions/ is no package: only the package data's patterns put its revisions into a wheel.
    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["db"]
    shipped = {path for pattern in patterns for path in (root / "db").glob(pattern)}
    revisions = set((root / "db" / "schema" / "alembic" / "versions").glob("v*.py"))
    assert revisions and revisions <= shipped
    assert root / "db" / "schema" / "alembic" / "script.py.mako" in shipped
