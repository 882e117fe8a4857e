"""The export on PostgreSQL: the same bytes as on SQLite for the same data, streamed from a server-side cursor."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest

from conftest import scripted_call
from db import CallSnapshot, Feedback, Order, OrderLine, open_repository
from db.clock import utcnow_iso
from db.postgres import reports as pg_reports
from db.postgres.from_sqlite import copy_to_postgres
from db.statements.reports import OrderFilter
from memory_agent import export
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS
from memory_agent.inspect import inspect_database

PIZZA = OrderLine(
    menu_item="margherita_pizza",
    name="Margherita Pizza",
    quantity=2,
    unit_price_cents=1450,
    modifications=["extra basil", 'no "spicy" oil, please', "=cmd|' /C calc'!A0"],
    accepted_allergens=["gluten", "milk"],
)
SALAD = OrderLine(menu_item="caesar_salad", name="Caesar Salad", quantity=1, unit_price_cents=975)
TIRAMISU = OrderLine(
    menu_item="tiramisu", name="Tiramisu", quantity=3, unit_price_cents=750, modifications=["+1 spoon"]
)

# Text that CSV, JSON and spreadsheets each find hard, as names and comments.
AWKWARD = {
    "+15550000001": 'O\'Brien, "Pat"\nthe second\r\tand \\ a backslash',
    "+15550000002": "José Zoë 李伟 🍕 \u0001 control",
    "+15550000003": '=HYPERLINK("http://evil")',
    "+15550000004": "@SUM(A1)",
    "+15550000005": "+1 (555) 010-0100",
    "+15550000006": "-2",
    "+15550000007": "Ann;=cmd|' /C calc'!A0",
    "+15550000008": "",
}


async def _fill(path: Path) -> None:
    async with open_repository(path) as repo:
        await repo.recovered()
        await scripted_call(repo, "+15551234567", FIRST_CALL_STEPS, FIRST_CALL_LINES)
        await scripted_call(repo, "+15551234567", RETURN_CALL_STEPS, RETURN_CALL_LINES)
        for n, (identity, name) in enumerate(AWKWARD.items()):
            now = utcnow_iso()
            await repo.save_call(
                CallSnapshot(
                    call_id=f"call-{n}",
                    identity=identity,
                    caller_name=name or None,
                    started_at=now,
                    order=Order(
                        status=("placed", "abandoned", "in_progress")[n % 3],
                        items=[PIZZA, SALAD, TIRAMISU][: 1 + n % 3],
                        tip_cents=n * 105,
                        kitchen_note=f"allergies: {name}" if n % 2 else None,
                    ),
                    feedback=Feedback(rating=1 + n % 5, comment=name) if n % 2 else None,
                    ended_at=now,
                    end_reason="participant_disconnected",
                )
            )
        await repo.save_call(  # an anonymous caller: no customer at all
            CallSnapshot(
                call_id="anonymous",
                started_at=utcnow_iso(),
                order=Order(status="placed", items=[SALAD]),
                ended_at=utcnow_iso(),
            )
        )
        # a household: a second person on one number
        await repo.save_call(
            CallSnapshot(
                call_id="household",
                identity="+15551234567#2",
                household="+15551234567",
                caller_name="Luca",
                started_at=utcnow_iso(),
                order=Order(status="placed", items=[TIRAMISU]),
                ended_at=utcnow_iso(),
            )
        )


@pytest.fixture
def both(tmp_path: Path, pg_url: str) -> tuple[Path, str]:
    """The same data in a SQLite file and in PostgreSQL."""
    path = tmp_path / "memory.db"
    asyncio.run(_fill(path))
    conn = sqlite3.connect(path)
    with conn:  # spread the orders over days, so the date filters have something to choose
        conn.execute("UPDATE orders SET created_at = '2026-11-0' || (1 + id % 9) || substr(created_at, 11)")
        # The last moment of summer time in New York: its clocks go back an hour at 06:00 UTC.
        conn.execute("UPDATE orders SET created_at = '2026-11-01T05:59:59.999999+00:00' WHERE id = 1")
    conn.close()
    copy_to_postgres(path, pg_url)
    return path, pg_url


def exported(capsysbinary, db: str, *argv: str) -> bytes:
    code = export.main(["--db", db, *argv])
    out = capsysbinary.readouterr()
    assert code == 0, out.err.decode()
    return out.out


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
@pytest.mark.parametrize("items", [False, True], ids=["orders", "items"])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_the_export_is_byte_for_byte_the_same_on_both_backends(both, capsysbinary, monkeypatch, fmt, items, zone):
    path, url = both
    monkeypatch.setenv("MEMORY_AGENT_TIMEZONE", zone)
    argv = ["--format", fmt, *(["--items"] if items else [])]

    on_sqlite = exported(capsysbinary, str(path), *argv)
    on_postgres = exported(capsysbinary, url, *argv)

    assert on_postgres == on_sqlite
    assert on_sqlite.count(b"\n") > 10
    offsets = [b"+00:00"] if zone == "UTC" else [b"-04:00", b"-05:00"]
    assert all(re.search(rb"T\d\d:\d\d:\d\d" + re.escape(offset), on_sqlite) for offset in offsets)
    assert b"allergies: " in on_sqlite and (b"gluten" in on_sqlite) == items


@pytest.mark.parametrize(
    "argv",
    [
        ["--status", "placed"],
        ["--status", "abandoned,in_progress", "--items"],
        ["--since", "2026-11-03", "--until", "2026-11-06"],
        ["--customer", "555-123-4567"],
        ["--customer", "+15550000003", "--format", "jsonl"],
        ["--since", "2030-01-01"],
    ],
    ids=["status", "statuses-items", "dates", "household", "one-caller", "none"],
)
def test_filters_choose_the_same_rows_on_both_backends(both, capsysbinary, argv):
    path, url = both

    assert exported(capsysbinary, url, *argv) == exported(capsysbinary, str(path), *argv)


def test_the_postgresql_export_streams_from_a_server_side_cursor(both):
    _, url = both
    conn = pg_reports.open_read_only(url)
    try:
        chunks = pg_reports.export_chunks(conn, OrderFilter(), fmt="csv", chunk_rows=2)
        header, _ = next(chunks)
        first, rows = next(chunks)
        open_cursors = conn.execute("SELECT name FROM pg_cursors").fetchall()
        rest = sum(n for _, n in chunks)
    finally:
        conn.close()

    assert header.startswith(b"order_id,") and rows == 2 and first.count(b"\r\n") == 2
    assert ("memory_agent_export",) in open_cursors
    assert rows + rest == 12


def row_versions(url: str) -> list[tuple]:
    """Every row of the copied tables with its version (``xmin``), which any write changes."""
    tables = ("customers", "calls", "orders", "order_items", "feedback", "messages")
    with psycopg.connect(url) as conn:
        return [
            (table, *row)
            for table in tables
            for row in conn.execute(f"SELECT id, xmin::text FROM {table} ORDER BY id").fetchall()
        ]


def test_the_export_only_reads_postgresql(both, capsysbinary):
    _, url = both
    before = row_versions(url)

    exported(capsysbinary, url, "--items")

    assert row_versions(url) == before


def test_a_database_that_is_not_ours_is_one_line(pg_url, capsysbinary):
    code = export.main(["--db", pg_url])
    err = capsysbinary.readouterr().err.decode()

    assert code == 1
    assert err.count("\n") == 1 and "is not a memory-agent database" in err


def test_an_unreachable_server_is_one_line_without_the_password(capsysbinary):
    code = export.main(["--db", "postgresql://owner:s3cret-pass@127.0.0.1:9/memory"])
    err = capsysbinary.readouterr().err.decode()

    assert code == 1
    assert err.startswith("memory-agent export: PostgreSQL at postgresql://owner:***@127.0.0.1:9/memory")
    assert err.count("\n") == 1 and "s3cret-pass" not in err


def test_inspect_says_in_one_line_that_it_reads_sqlite_only(capsys):
    import io

    err = io.StringIO()
    code = inspect_database(Path("postgresql://owner:s3cret-pass@db.internal/memory"), err=err)

    assert code == 2
    assert err.getvalue().count("\n") == 1 and "SQLite only" in err.getvalue()
    assert "s3cret-pass" not in err.getvalue()
