"""scripts/export_orders.py: what it writes, what it filters, and what it refuses."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import json
import os
import pty
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import open_call, rows, scripted_call
from db import CallSnapshot, Feedback, Order, OrderLine, Repository
from db.clock import utcnow_iso
from db.schema.alembic import legacy
from db.statements.reports import export_columns
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS
from memory_agent.scripted_llm import Say, ToolCall

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "export_orders.py"

_spec = importlib.util.spec_from_file_location("export_orders", SCRIPT)
export_orders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_orders)

PIZZA = OrderLine(
    menu_item="margherita_pizza",
    name="Margherita Pizza",
    quantity=2,
    unit_price_cents=1450,
    modifications=["extra basil", 'no "spicy" oil, please'],
)
SALAD = OrderLine(menu_item="caesar_salad", name="Caesar Salad", quantity=1, unit_price_cents=975)
TIRAMISU = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=3, unit_price_cents=750)

TRICKY_NAMES = {
    "+15550000001": 'O\'Brien, "Pat"\nthe second',
    "+15550000002": "José Zoë 李伟 🍕",
    "+15550000003": '=HYPERLINK("http://evil")',
    "+15550000004": "@SUM(A1)",
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = export_orders.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


EMPTY = "export_orders: no orders match these filters; the export is empty\n"
EMPTY_ITEMS = EMPTY.replace("no orders", "no order items")


def export(capsys, db_path: Path, *argv: str) -> str:
    """The export's output; standard error stays silent, but for saying that it is empty."""
    code, out, err = run(capsys, "--db", str(db_path), *argv)
    assert code == 0 and err in ("", EMPTY, EMPTY_ITEMS), err
    return out


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def place(
    repo: Repository,
    call_id: str,
    identity: str | None,
    items,
    *,
    status="placed",
    tip=0,
    name=None,
    rating=None,
    comment="",
) -> None:
    now = utcnow_iso()
    await open_call(repo, call_id=call_id, identity=identity, started_at=now)
    await repo.save_call(
        CallSnapshot(
            call_id=call_id,
            identity=identity,
            caller_name=name,
            order=Order(status=status, items=list(items), tip_cents=tip),
            feedback=Feedback(rating=rating, comment=comment) if rating else None,
            ended_at=now,
            end_reason="participant_disconnected",
        )
    )


def set_created(db_path: Path, dates: dict[str, str]) -> None:
    """Move orders in time (they are dated by their call, here the current time)."""
    conn = sqlite3.connect(db_path)
    with conn:
        for call_id, created in dates.items():
            conn.execute("UPDATE orders SET created_at = ? WHERE call_id = ?", (created, call_id))
    conn.close()


@pytest.fixture
async def agent_db(repo, db_path) -> Path:
    """Two calls of one caller through the real agents, and one anonymous abandoned order."""
    await scripted_call(repo, "+15551234567", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    await scripted_call(repo, "+15551234567", RETURN_CALL_STEPS, RETURN_CALL_LINES)
    await place(repo, "anon-1", None, [SALAD], status="abandoned")
    return db_path


@pytest.fixture
async def tricky_db(repo, db_path) -> Path:
    for n, (identity, name) in enumerate(TRICKY_NAMES.items()):
        await place(repo, f"call-{n}", identity, [PIZZA, TIRAMISU], tip=n * 100, name=name, rating=1 + n, comment=name)
    return db_path


async def test_csv_has_one_row_per_order_with_items_summary_and_dollars(agent_db, capsys):
    exported = csv_rows(export(capsys, agent_db))

    assert [(r["order_id"], r["status"], r["customer_name"], r["item_count"]) for r in exported] == [
        ("1", "placed", "Maria", "3"),
        ("2", "placed", "Maria", "3"),
        ("3", "abandoned", "", "1"),
    ]
    first = exported[0]
    assert first["items"] == "2x Margherita Pizza (extra basil), 1x Tiramisu"
    assert (first["subtotal_dollars"], first["tip_dollars"], first["total_dollars"]) == (
        "36.50",
        "0.00",
        "36.50",
    )
    assert first["rating"] == "2" and exported[1]["rating"] == ""
    assert first["customer_identity"] == "+15551234567"  # a phone number stays readable
    assert first["created_at"].endswith("+00:00")


async def test_totals_equal_the_sql_sums(agent_db, capsys):
    exported = csv_rows(export(capsys, agent_db))

    ((subtotal, tip, total),) = rows(
        agent_db, "SELECT sum(subtotal_cents), sum(tip_cents), sum(total_cents) FROM orders"
    )
    assert sum(Decimal(r["subtotal_dollars"]) for r in exported) * 100 == subtotal
    assert sum(Decimal(r["tip_dollars"]) for r in exported) * 100 == tip
    assert sum(Decimal(r["total_dollars"]) for r in exported) * 100 == total


async def test_items_mode_has_one_row_per_order_item_and_line_totals_match(agent_db, capsys):
    exported = csv_rows(export(capsys, agent_db, "--items"))

    assert len(exported) == rows(agent_db, "SELECT count(*) FROM order_items")[0][0] == 5
    assert exported[0]["name"] == "Margherita Pizza" and exported[0]["modifications"] == "extra basil"
    ((expected,),) = rows(agent_db, "SELECT sum(quantity * unit_price_cents) FROM order_items")
    assert sum(Decimal(r["line_total_dollars"]) for r in exported) * 100 == expected


@pytest.mark.parametrize("items", [False, True])
async def test_json_is_one_document_and_jsonl_one_object_per_line(agent_db, capsys, items):
    flag = ["--items"] if items else []
    as_csv = csv_rows(export(capsys, agent_db, *flag))
    document = json.loads(export(capsys, agent_db, "--format", "json", *flag), parse_float=Decimal)
    lines = export(capsys, agent_db, "--format", "jsonl", *flag).splitlines()

    assert [json.loads(line, parse_float=Decimal) for line in lines] == document
    assert len(document) == len(as_csv)
    key = "line_total_dollars" if items else "total_dollars"
    assert [str(row[key]) for row in document] == [row[key] for row in as_csv]


async def test_json_keeps_identities_and_modifications_as_data(agent_db, capsys):
    document = json.loads(export(capsys, agent_db, "--format", "json", "--items"))

    assert document[0]["customer_identity"] == "+15551234567"
    assert document[0]["modifications"] == ["extra basil"]
    assert document[-1]["customer_identity"] is None


async def test_names_with_commas_quotes_newlines_and_unicode_round_trip(tricky_db, capsys):
    exported = csv_rows(export(capsys, tricky_db))
    document = json.loads(export(capsys, tricky_db, "--format", "json"))

    assert [r["customer_name"] for r in document] == list(TRICKY_NAMES.values())
    assert exported[0]["customer_name"] == TRICKY_NAMES["+15550000001"]
    assert exported[1]["customer_name"] == TRICKY_NAMES["+15550000002"]
    assert exported[0]["items"] == '2x Margherita Pizza (extra basil, no "spicy" oil, please), 3x Tiramisu'


async def test_formula_cells_are_neutralized_in_csv(tricky_db, capsys):
    text = export(capsys, tricky_db)
    items_text = export(capsys, tricky_db, "--items")

    names = [r["customer_name"] for r in csv_rows(text)]
    assert names[2] == "'" + TRICKY_NAMES["+15550000003"]
    assert names[3] == "'" + TRICKY_NAMES["+15550000004"]
    for row in [*csv_rows(text), *csv_rows(items_text)]:
        for value in row.values():
            assert not value or value[0] not in "=@\t\r", value


@pytest.mark.parametrize("value", ["=1+1", "+A1", "-2+3+cmd|' /C calc'!A0", "@A1", "\tx", "\rx", "+", "-"])
async def test_every_formula_start_is_neutralized(repo, db_path, capsys, value):
    await place(repo, "c1", "someone", [SALAD], name=value)
    [row] = csv_rows(export(capsys, db_path))
    assert row["customer_name"] == "'" + value


@pytest.mark.parametrize(
    "value, cell",
    [
        ("Ann;=cmd|' /C calc'!A0", "Ann;'=cmd|' /C calc'!A0"),
        ("Ann,@SUM(A1)", "Ann,'@SUM(A1)"),
        ("Ann\t=1+1", "Ann\t'=1+1"),
        ("Ann;  -2+3+cmd|' /C calc'!A0", "Ann;  '-2+3+cmd|' /C calc'!A0"),
        ("a;=1;b,+x", "a;'=1;b,'+x"),
        ("Mary-Jane O'Hara = chef", "Mary-Jane O'Hara = chef"),
    ],
)
async def test_formulas_after_any_separator_are_neutralized(repo, db_path, capsys, value, cell):
    await place(repo, "c1", "someone", [SALAD], name=value)
    [row] = csv_rows(export(capsys, db_path))
    assert row["customer_name"] == cell


@pytest.mark.parametrize("value", ["+15551234567", "+1 (555) 010-0100", "-2", "call me on; +1 555 010 0100"])
async def test_phone_numbers_and_numbers_stay_readable(repo, db_path, capsys, value):
    await place(repo, "c1", "someone", [SALAD], name=value)
    [row] = csv_rows(export(capsys, db_path))
    assert row["customer_name"] == value


async def test_modifications_are_neutralized_in_the_summary_and_the_items(repo, db_path, capsys):
    line = OrderLine(
        menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750, modifications=["x;=cmd|a", "@b"]
    )
    await place(repo, "c1", "someone", [line])

    [order] = csv_rows(export(capsys, db_path))
    [item] = csv_rows(export(capsys, db_path, "--items"))

    assert order["items"] == "1x Tiramisu (x;'=cmd|a, '@b)"
    assert item["modifications"] == "x;'=cmd|a, '@b"
    [as_json] = json.loads(export(capsys, db_path, "--items", "--format", "json"))
    assert as_json["modifications"] == ["x;=cmd|a", "@b"]  # JSON is data, never altered


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ["a", "b", "c", "d"]),
        (["--since", "2025-02-01"], ["b", "c", "d"]),
        (["--until", "2025-02-01"], ["a", "b"]),
        (["--since", "2025-02-01", "--until", "2025-02-01"], ["b"]),
        (["--since", "2025-02-01T12:00:00Z"], ["c", "d"]),
        (["--until", "2025-02-01T12:00:00+00:00"], ["a", "b"]),
        (["--status", "placed"], ["a", "c"]),
        (["--status", "abandoned,in_progress"], ["b", "d"]),
        (["--customer", "+15550000002"], ["c", "d"]),
        (["--customer", "(555) 000-0002"], ["c", "d"]),
        (["--customer", "555-000-0002"], ["c", "d"]),
        (["--customer", "tel:+15550000002"], ["c", "d"]),
        (["--customer", "sip:+15550000002@pbx.example"], ["c", "d"]),
        (["--customer", "nobody"], []),
        (["--customer", "+15550000002", "--status", "placed", "--since", "2025-03-01"], ["c"]),
    ],
)
async def test_filters_select_the_right_orders(repo, db_path, capsys, argv, expected):
    await place(repo, "a", "+15550000001", [SALAD])
    await place(repo, "b", "+15550000001", [PIZZA], status="abandoned")
    await place(repo, "c", "+15550000002", [TIRAMISU])
    await place(repo, "d", "+15550000002", [SALAD], status="in_progress")
    set_created(
        db_path,
        {
            "a": "2025-01-15T10:00:00.000000+00:00",
            "b": "2025-02-01T09:00:00.000000+00:00",
            "c": "2025-03-01T12:00:00.000000+00:00",
            "d": "2025-03-02T08:00:00.000000+00:00",
        },
    )
    ids = {row[0]: call for row, call in zip(rows(db_path, "SELECT id, call_id FROM orders"), "abcd", strict=True)}

    exported = csv_rows(export(capsys, db_path, *argv))

    assert [ids[int(r["order_id"])] for r in exported] == expected


async def test_days_are_the_restaurants_local_days(repo, db_path, capsys, monkeypatch):
    await place(repo, "late", "+15550000001", [SALAD])
    set_created(db_path, {"late": "2025-07-04T02:30:00.000000+00:00"})  # July 3, 22:30 in New York
    monkeypatch.setenv("MEMORY_AGENT_TIMEZONE", "America/New_York")

    assert len(csv_rows(export(capsys, db_path, "--since", "2025-07-03", "--until", "2025-07-03"))) == 1
    assert csv_rows(export(capsys, db_path, "--since", "2025-07-04")) == []
    assert len(csv_rows(export(capsys, db_path, "--since", "2025-07-03T22:00"))) == 1  # a local time


def restaurant_file(tmp_path: Path, zone: str) -> Path:
    path = tmp_path / "restaurant.toml"
    path.write_text(f'name = "Harbor Noodles"\ntimezone = "{zone}"\nmenu = "{ROOT / "memory_agent" / "menu.toml"}"\n')
    return path


async def test_times_are_the_restaurants_local_time_with_its_offset(repo, db_path, capsys, monkeypatch, tmp_path):
    await place(repo, "summer", "+15550000001", [SALAD])
    await place(repo, "winter", "+15550000002", [SALAD])
    set_created(
        db_path,
        {"summer": "2025-07-04T02:30:00.250000+00:00", "winter": "2025-12-05T00:30:00.999999+00:00"},
    )
    monkeypatch.setenv("MEMORY_AGENT_RESTAURANT", str(restaurant_file(tmp_path, "America/New_York")))

    by_call = {r["customer_identity"]: r["created_at"] for r in csv_rows(export(capsys, db_path))}
    items = {r["created_at"] for r in csv_rows(export(capsys, db_path, "--items"))}
    as_json = {r["created_at"] for r in json.loads(export(capsys, db_path, "--format", "json"))}

    assert by_call == {"+15550000001": "2025-07-03T22:30:00-04:00", "+15550000002": "2025-12-04T19:30:00-05:00"}
    assert items == as_json == set(by_call.values())
    # The filters read the same local days.
    assert len(csv_rows(export(capsys, db_path, "--since", "2025-12-04", "--until", "2025-12-04"))) == 1


async def test_a_time_zone_set_twice_differently_is_refused_in_one_line(agent_db, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MEMORY_AGENT_RESTAURANT", str(restaurant_file(tmp_path, "America/Chicago")))
    monkeypatch.setenv("MEMORY_AGENT_TIMEZONE", "Europe/Rome")
    code, out, err = run(capsys, "--db", str(agent_db))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "'America/Chicago' but MEMORY_AGENT_TIMEZONE says 'Europe/Rome'" in err


async def test_a_number_exports_every_person_on_it(repo, db_path, capsys):
    await place(repo, "maria", "+15550000002", [SALAD])
    await place(repo, "tom", "+15550000002#2", [TIRAMISU])
    await place(repo, "other", "+15550000021", [PIZZA])

    by_number = csv_rows(export(capsys, db_path, "--customer", "555-000-0002"))
    by_profile = csv_rows(export(capsys, db_path, "--customer", "+15550000002#2"))

    # A household's second profile is not a plain number: its + gets the quote mark.
    assert sorted(r["customer_identity"] for r in by_number) == ["'+15550000002#2", "+15550000002"]
    assert [r["customer_identity"] for r in by_profile] == ["'+15550000002#2"]


async def test_an_empty_result_says_so_on_stderr(agent_db, capsys):
    code, out, err = run(capsys, "--db", str(agent_db), "--customer", "+15559999999")
    assert (code, err) == (0, EMPTY)
    assert out == ",".join(export_columns()) + "\r\n"


async def test_an_impossible_range_is_refused_and_writes_nothing(agent_db, capsys, tmp_path):
    target = tmp_path / "orders.csv"
    code, out, err = run(
        capsys, "--db", str(agent_db), "--since", "2025-03-01", "--until", "2025-02-01", "-o", str(target)
    )

    assert (code, out) == (2, "")
    assert err == "export_orders: --since 2025-03-01 is not before --until 2025-02-01: no order can match\n"
    assert not target.exists()


def test_an_unknown_time_zone_is_one_line(agent_db, capsys, monkeypatch):
    monkeypatch.setenv("MEMORY_AGENT_TIMEZONE", "Mars/Olympus_Mons")
    code, out, err = run(capsys, "--db", str(agent_db))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "unknown time zone 'Mars/Olympus_Mons'" in err


async def test_the_installed_command_exports_with_the_same_options(agent_db, tmp_path):
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "memory_agent", "export", "--db", str(agent_db), "--status", "placed", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert [order["total_dollars"] for order in json.loads(done.stdout)] == [Decimal("36.50"), Decimal("36.50")]


def test_the_installed_command_refuses_bad_input_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "memory_agent", "export", "--db", str(tmp_path / "nope.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == f"memory-agent export: database {tmp_path / 'nope.db'} does not exist\n"


def test_the_script_under_another_python_says_what_to_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-S", "-I", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "memory-agent export" in done.stderr and "Traceback" not in done.stderr


async def test_empty_database_gives_a_header_only(repo, db_path, capsys):
    assert export(capsys, db_path) == ",".join(export_columns()) + "\r\n"
    assert export(capsys, db_path, "--items").startswith("order_id,created_at,")
    assert json.loads(export(capsys, db_path, "--format", "json")) == []
    assert export(capsys, db_path, "--format", "jsonl") == ""


async def test_output_file_is_written_and_matches_standard_output(agent_db, capsys, tmp_path):
    target = tmp_path / "orders.csv"
    code, out, err = run(capsys, "--db", str(agent_db), "--output", str(target))

    assert (code, out, err) == (0, "", "")
    assert target.read_bytes().decode() == export(capsys, agent_db)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".orders")) == []


async def test_database_path_comes_from_the_environment_then_the_working_directory(
    agent_db, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("MEMORY_AGENT_DB", str(agent_db))
    assert len(csv_rows(run(capsys)[1])) == 3

    monkeypatch.delenv("MEMORY_AGENT_DB")
    monkeypatch.chdir(agent_db.parent)
    assert agent_db.name == "memory.db"
    assert len(csv_rows(run(capsys)[1])) == 3


async def test_export_reads_a_database_at_an_older_schema_version(tmp_path, capsys):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    legacy.sqlite_file_at(conn, 1)
    conn.execute("INSERT INTO calls (id, started_at) VALUES ('c', '2025-01-01T00:00:00+00:00')")
    conn.execute(
        "INSERT INTO orders (call_id, status, subtotal_cents, total_cents, created_at, updated_at)"
        " VALUES ('c', 'placed', 1000, 1000, '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00')"
    )
    conn.close()
    before = path.read_bytes()

    assert csv_rows(export(capsys, path))[0]["total_dollars"] == "10.00"
    assert path.read_bytes() == before


def _database_files(db_path: Path) -> dict[str, tuple[bytes, int]]:
    # The -shm file is SQLite's shared lock index, where every reader marks its place; not data.
    files = (db_path, db_path.with_name(db_path.name + "-wal"))
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files if p.exists()}


async def test_export_never_writes_to_the_database(agent_db, capsys, tmp_path):
    snapshot = _database_files(agent_db)

    export(capsys, agent_db, "--items", "--format", "jsonl")
    export(capsys, agent_db, "--output", str(tmp_path / "out.csv"))

    assert _database_files(agent_db) == snapshot


def _not_ours(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()


BAD_INPUTS = [
    ("missing database", lambda d: ["--db", str(d / "nope.db")], "does not exist"),
    ("a folder", lambda d: ["--db", str(d)], "is not a file"),
    ("not SQLite", lambda d: ["--db", str(d / "notes.txt")], "is not a SQLite database"),
    ("empty file", lambda d: ["--db", str(d / "empty.db")], "is not a SQLite database"),
    ("SQLite, not ours", lambda d: ["--db", str(d / "other.db")], "not a memory-agent database"),
    (
        "bad since",
        lambda d: ["--db", str(d / "memory.db"), "--since", "yesterday"],
        "not a date: 'yesterday'",
    ),
    ("bad until", lambda d: ["--db", str(d / "memory.db"), "--until", "2025-02-30"], "not a date"),
    ("until past year 9999", lambda d: ["--db", str(d / "memory.db"), "--until", "9999-12-31"], "not a date"),
    (
        "since before year 1 in UTC",
        lambda d: ["--db", str(d / "memory.db"), "--since", "0001-01-01T00:00:00+05:00"],
        "not a date",
    ),
    (
        "unknown status",
        lambda d: ["--db", str(d / "memory.db"), "--status", "placed,lost"],
        "unknown status 'lost'",
    ),
    ("empty status", lambda d: ["--db", str(d / "memory.db"), "--status", ","], "unknown status"),
    ("unknown format", lambda d: ["--db", str(d / "memory.db"), "--format", "xml"], "invalid choice: 'xml'"),
    ("unknown option", lambda d: ["--db", str(d / "memory.db"), "--colour"], "unrecognized arguments"),
    (
        "output folder missing",
        lambda d: ["--db", str(d / "memory.db"), "--output", str(d / "x" / "o.csv")],
        "does not exist",
    ),
    (
        "output is the database",
        lambda d: ["--db", str(d / "memory.db"), "--output", str(d / "memory.db")],
        "is the database itself",
    ),
]


@pytest.mark.parametrize("argv, message", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
async def test_bad_input_gets_one_line_error_and_changes_nothing(agent_db, capsys, argv, message):
    folder = agent_db.parent
    (folder / "notes.txt").write_text("not a database\n" * 20)
    (folder / "empty.db").write_bytes(b"")
    _not_ours(folder / "other.db")
    (folder / "out.csv").write_text("yesterday's export\n")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}
    before.pop("memory.db-shm")

    args = argv(folder)
    if "--output" not in args:
        args += ["--output", str(folder / "out.csv")]

    code, out, err = run(capsys, *args)

    assert code != 0
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("export_orders: ") and message in err, err
    assert "Traceback" not in err
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}
    after.pop("memory.db-shm")
    assert after == before


def test_script_runs_standalone_without_livekit(tmp_path):
    probe = (
        "import runpy, sys; sys.argv = ['export_orders', '--help'];"
        f"\ntry: runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
        "\nexcept SystemExit as e: code = e.code"
        "\nassert not [m for m in sys.modules if m.startswith('livekit')], 'livekit imported'"
        "\nsys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)

    assert done.returncode == 0, done.stderr
    for option in ("--db", "--format", "--since", "--until", "--status", "--customer", "--items", "--output"):
        assert option in done.stdout
    assert not (tmp_path / "memory.db").exists()


async def test_progress_goes_to_a_terminal_on_stderr_never_into_the_data(agent_db, tmp_path):
    leader, follower = pty.openpty()
    target = tmp_path / "orders.csv"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(SCRIPT), "--db", str(agent_db), "--output", str(target)],
        stderr=follower,
        stdout=subprocess.DEVNULL,
        timeout=60,
    )
    os.close(follower)
    progress = os.read(leader, 4096).decode()
    os.close(leader)

    assert done.returncode == 0
    assert "100%" in progress and "3/3 orders" in progress
    assert len(csv_rows(target.read_bytes().decode())) == 3


async def test_the_export_carries_the_kitchen_note_and_the_allergens_a_caller_accepted(repo, db_path, capsys):
    steps = [
        Say("Welcome! Your name?"),
        ToolCall("save_customer_name", {"name": "Anna"}),
        ToolCall("remember_allergy", {"allergen": "pine nuts"}),
        Say("What would you like?"),
        ToolCall("add_to_order", {"item": "pesto_pizza", "accept_allergens": True}),
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        Say("Place it?"),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "+15557654321", steps, ["..."] * 4, trust_caller_id=True)

    [order] = csv_rows(export(capsys, db_path))
    assert order["kitchen_note"] == "Allergies: tree nuts"
    pesto, water = csv_rows(export(capsys, db_path, "--items"))
    assert (pesto["menu_item"], pesto["accepted_allergens"]) == ("pesto_pizza", "tree nuts")
    assert (water["accepted_allergens"], water["kitchen_note"]) == ("", "Allergies: tree nuts")
    [line] = export(capsys, db_path, "--format", "jsonl", "--items").splitlines()[:1]
    assert json.loads(line)["accepted_allergens"] == ["tree nuts"]
