"""memory-agent migrate-to-postgres: a live SQLite database copied into PostgreSQL, safe to repeat and resume."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from conftest import scripted_call
from db import CallSnapshot, Feedback, Order, OrderLine, open_repository
from db.clock import utcnow_iso
from db.errors import NotADatabase
from db.postgres.from_sqlite import ForeignTarget, TableCopy, copy_to_postgres
from db.spool import append, spool_path
from memory_agent.cli import main
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS

CALLER = "+15551234567"
ERASED = "+15559876543"
PASSWORD_STAND_IN = "not-the-password-0451"


async def _calls(path: Path) -> None:
    async with open_repository(path) as repo:
        await repo.recovered()
        await scripted_call(repo, CALLER, FIRST_CALL_STEPS, FIRST_CALL_LINES)
        await scripted_call(repo, CALLER, RETURN_CALL_STEPS, RETURN_CALL_LINES)
        await scripted_call(repo, ERASED, FIRST_CALL_STEPS, FIRST_CALL_LINES)
        now = utcnow_iso()
        line = OrderLine(
            menu_item="margherita_pizza",
            name="Margherita Pizza",
            quantity=2,
            unit_price_cents=1450,
            modifications=['no "spicy" oil', "=cmd|' /C calc'!A0"],
        )
        await repo.save_call(
            CallSnapshot(
                call_id="tricky",
                identity="+15550000001",
                caller_name='O\'Brien, "Pat"\nJosé 李伟 🍕',
                started_at=now,
                order=Order(status="abandoned", items=[line], tip_cents=150),
                feedback=Feedback(rating=1, comment="cold;\t=1+1"),
                ended_at=now,
                end_reason="participant_disconnected",
            )
        )


def make_source(path: Path) -> Path:
    """A database written by real calls through the agents, and one caller with awkward text."""
    asyncio.run(_calls(path))
    return path


async def _forget(path: Path, identity: str) -> None:
    async with open_repository(path) as repo:
        await repo.recovered()
        await repo.forget(identity)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_source(tmp_path / "memory.db")


def copied_tables(path: Path) -> dict[str, list[str]]:
    """Each table the copy carries, with every column SQLite has for it (computed ones too)."""
    conn = sqlite3.connect(path)
    try:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name NOT LIKE '%fts%' AND name NOT IN ('schema_migrations', 'alembic_version')"
            )
        ]
        return {name: [row[1] for row in conn.execute(f"PRAGMA table_xinfo({name})")] for name in names}
    finally:
        conn.close()


def sqlite_rows(path: Path, table: str, columns: list[str]) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id").fetchall()
    finally:
        conn.close()


def pg_rows(url: str, table: str, columns: list[str]) -> list[tuple]:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT {} FROM {} ORDER BY id").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
        )
        return conn.execute(query).fetchall()


def pg_value(url: str, query: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


def assert_same_data(path: Path, url: str) -> None:
    for table, columns in copied_tables(path).items():
        assert pg_rows(url, table, columns) == sqlite_rows(path, table, columns), table


def row_versions(url: str, tables: list[str]) -> dict[str, list[tuple]]:
    """Every row's id and PostgreSQL version (``xmin``): an update, even to the same values, changes it."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(
                sql.SQL("SELECT id, xmin::text FROM {} ORDER BY id").format(sql.Identifier(table))
            ).fetchall()
            for table in tables
        }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_table_is_copied_row_for_row_with_its_ids(source, pg_url):
    report = copy_to_postgres(source, pg_url)

    assert_same_data(source, pg_url)
    tables = copied_tables(source)
    assert {t.table for t in report.tables} == set(tables)
    for copied in report.tables:
        assert copied.rows == copied.new == len(sqlite_rows(source, copied.table, ["id"])), copied
    assert {"customers", "calls", "orders", "order_items", "feedback", "messages"} <= {
        t.table for t in report.tables if t.rows
    }


def test_the_source_file_is_only_read(source, pg_url):
    before = digest(source), source.stat().st_mtime_ns

    copy_to_postgres(source, pg_url)

    assert (digest(source), source.stat().st_mtime_ns) == before


def test_new_rows_on_postgresql_get_ids_after_the_copied_ones(source, pg_url):
    copy_to_postgres(source, pg_url)

    for table in ("customers", "orders", "order_items", "feedback", "messages"):
        copied = pg_value(pg_url, f"SELECT max(id) FROM {table}")
        assert pg_value(pg_url, f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))") == copied + 1


def test_a_second_run_changes_nothing_and_says_zero_new(source, pg_url):
    copy_to_postgres(source, pg_url)
    tables = list(copied_tables(source))
    before = row_versions(pg_url, tables)

    again = copy_to_postgres(source, pg_url)

    assert (again.new, again.changed, again.removed) == (0, 0, 0)
    assert row_versions(pg_url, tables) == before
    assert_same_data(source, pg_url)


def test_an_interrupted_copy_is_finished_by_running_it_again(source, pg_url):
    class Interrupted(Exception):
        pass

    def stop_in_the_messages(copied: TableCopy) -> None:
        if copied.table == "messages" and not copied.finished:
            raise Interrupted

    with pytest.raises(Interrupted):
        copy_to_postgres(source, pg_url, batch_rows=10, progress=stop_in_the_messages)
    copied_before = pg_value(pg_url, "SELECT count(*) FROM messages")
    total = len(sqlite_rows(source, "messages", ["id"]))
    assert copied_before == 10 < total

    report = copy_to_postgres(source, pg_url, batch_rows=10)

    assert_same_data(source, pg_url)
    by_table = {t.table: t for t in report.tables}
    assert by_table["messages"].new == total - 10
    assert by_table["calls"].new == 0
    assert (report.changed, report.removed) == (0, 0)


def test_a_rerun_brings_what_the_file_has_since_then_even_an_erasure(source, pg_url):
    copy_to_postgres(source, pg_url)
    asyncio.run(_forget(source, ERASED))
    asyncio.run(_calls_of_a_returning_caller(source))

    report = copy_to_postgres(source, pg_url)

    assert_same_data(source, pg_url)
    assert report.new > 0 and report.removed > 0
    assert pg_value(pg_url, f"SELECT count(*) FROM customers WHERE participant_identity = '{ERASED}'") == 0
    assert pg_value(pg_url, "SELECT count(*) FROM erasures") == 1


async def _calls_of_a_returning_caller(path: Path) -> None:
    async with open_repository(path) as repo:
        await repo.recovered()
        await scripted_call(repo, CALLER, RETURN_CALL_STEPS, RETURN_CALL_LINES)


def test_a_target_with_data_from_another_file_is_refused_and_left_alone(source, tmp_path, pg_url):
    other = make_source(tmp_path / "other.db")
    copy_to_postgres(other, pg_url)
    before = row_versions(pg_url, ["customers", "calls", "messages"])

    with pytest.raises(ForeignTarget, match="not copied from this file"):
        copy_to_postgres(source, pg_url)

    assert row_versions(pg_url, ["customers", "calls", "messages"]) == before


def test_a_target_in_use_since_the_copy_is_refused(source, pg_url):
    copy_to_postgres(source, pg_url)
    with psycopg.connect(pg_url) as conn:  # a worker on PostgreSQL takes a call
        conn.execute("INSERT INTO calls (id, started_at) VALUES ('after-the-move', '2026-12-01T12:00:00+00:00')")

    with pytest.raises(ForeignTarget, match="in use"):
        copy_to_postgres(source, pg_url)

    assert pg_value(pg_url, "SELECT count(*) FROM calls WHERE id = 'after-the-move'") == 1


def test_a_database_of_another_application_is_refused(source, pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY)")

    with pytest.raises(NotADatabase, match="not a memory-agent database"):
        copy_to_postgres(source, pg_url)

    assert pg_value(pg_url, "SELECT to_regclass('customers')") is None


# -- the command ---------------------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["migrate-to-postgres", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_command_prints_counts_per_table_then_zero_new_on_a_rerun(source, pg_url, capsys):
    code, out, err = run(capsys, str(source), pg_url)

    assert code == 0, err
    customers = len(sqlite_rows(source, "customers", ["id"]))
    assert re.search(rf"^  customers +{customers} rows  {customers} new, 0 changed, 0 removed$", out, re.M), out
    assert "Done: 0 new" not in out
    password = urlsplit(pg_url).password
    assert not password or password not in out + err

    code, out, err = run(capsys, str(source), pg_url)

    assert code == 0, err
    assert out.rstrip().endswith("Done: 0 new, 0 changed, 0 removed.")


def test_the_command_says_when_calls_still_wait_in_the_spool(source, pg_url, capsys):
    append(spool_path(source), CallSnapshot(call_id="spooled", identity=CALLER, started_at=utcnow_iso()))

    code, out, err = run(capsys, str(source), pg_url)

    assert code == 0
    assert err.startswith("note: 1 call(s) wait in the spool") and "memory-agent purge --db" in err


def _with_password(url: str, password: str, *, port: int | None = None) -> str:
    parts = urlsplit(url)
    host = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{port or parts.port}"
    return urlunsplit(parts._replace(netloc=host))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_INPUTS = [
    ("missing file", "missing.db", None, "does not exist"),
    ("not SQLite", "notes.txt", None, "is not a SQLite database"),
    ("another SQLite file", "other.sqlite", None, "not a memory-agent database"),
    ("not a PostgreSQL URL", None, f"mysql://root:{PASSWORD_STAND_IN}@127.0.0.1/db", "is not a PostgreSQL URL"),
    ("a port that is no number", None, f"postgresql://u:{PASSWORD_STAND_IN}@127.0.0.1:port/db", "not a valid"),
    ("a server that does not answer", None, "closed-port", "Connection refused"),
]


@pytest.mark.parametrize("source_name, url, message", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_without_the_password(source, tmp_path, pg_url, capsys, source_name, url, message):
    (tmp_path / "notes.txt").write_text("shopping list\n" * 20)
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE t (x)").connection.close()
    path = tmp_path / source_name if source_name else source
    if url == "closed-port":
        url = _with_password(pg_url, PASSWORD_STAND_IN, port=_free_port())

    code, out, err = run(capsys, str(path), url or pg_url)

    assert code == 1
    assert err.startswith("memory-agent: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and PASSWORD_STAND_IN not in out + err
    assert out == ""


def test_a_wrong_password_is_refused_without_showing_it(source, pg_url, capsys):
    wrong = _with_password(pg_url, PASSWORD_STAND_IN)
    try:
        psycopg.connect(wrong).close()
        pytest.skip("this test server lets any password in")
    except psycopg.OperationalError:
        pass

    code, out, err = run(capsys, str(source), wrong)

    assert code == 1 and err.count("\n") == 1 and "password authentication failed" in err
    assert PASSWORD_STAND_IN not in out + err
