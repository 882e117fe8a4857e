"""Datasette on the memory database: the shipped metadata loads, links, canned queries, search."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from datasette.app import Datasette

from conftest import open_call, scripted_call
from inspect_server import serve
from memory_agent.datasette.serve import register_plugin
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS
from memory_agent.inspect import INSTALL_COMMAND, ROOT_ACTOR, datasette_command, inspect_database, load_metadata
from memory_agent.scripted_llm import Say, ToolCall

QUERY_PARAMS = {
    "caller": {"identity": "+15551234567"},
    "top_items": {"since": "2000-01-01", "until": "2100-12-31"},
    "low_ratings": {},
    "search_conversations": {"q": "cold"},
    "daily_sales": {"since": "", "until": ""},
}


@pytest.fixture
async def filled_db(repo, db_path) -> Path:
    await scripted_call(repo, "+15551234567", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    await scripted_call(repo, "+15551234567", RETURN_CALL_STEPS, RETURN_CALL_LINES)
    return db_path


@pytest.fixture
async def ds(filled_db) -> Datasette:
    register_plugin()
    datasette = Datasette([str(filled_db)], metadata=load_metadata(filled_db.stem))
    await datasette.invoke_startup()
    return datasette


def logged_in(ds: Datasette) -> dict[str, str]:
    """The cookie the printed login link sets."""
    return {"ds_actor": ds.sign({"a": ROOT_ACTOR}, "actor")}


async def get_json(ds: Datasette, path: str, **params: str):
    response = await ds.client.get(path, params=params, cookies=logged_in(ds))
    assert response.status_code == 200, (path, response.text[:500])
    return response.json()


async def test_database_and_metadata_load_with_views_and_descriptions(ds):
    database = await get_json(ds, "/memory.json")
    tables = {t["name"]: t for t in database["tables"]}

    assert {"customers", "calls", "orders", "order_items", "feedback", "messages"} <= set(tables)
    assert tables["messages_fts"]["hidden"] and not tables["orders"]["hidden"]
    assert {v["name"] for v in database["views"]} >= {
        "order_lines",
        "customer_summary",
        "daily_sales",
        "feedback_with_call",
    }
    html = (await ds.client.get("/memory/orders", cookies=logged_in(ds))).text
    assert "At most one order per call" in html
    assert "in_progress (still being taken)" in html  # allowed values, in the column description


async def test_database_is_served_read_only_and_sees_new_writes(ds, repo, db_path):
    database = ds.get_database("memory")
    assert database.is_mutable  # opened with mode=ro, which reads the WAL; immutable would not
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await database.execute("DELETE FROM orders")

    await open_call(repo, call_id="late", identity="+15559999999", started_at="2025-01-01T00:00:00+00:00")

    customers = await get_json(ds, "/memory/customers.json", _shape="array", _sort="id")
    assert [c["participant_identity"] for c in customers] == ["+15551234567", "+15559999999"]


async def test_foreign_keys_show_as_links_labelled_by_customer(ds):
    html = (await ds.client.get("/memory/orders", cookies=logged_in(ds))).text
    assert '<a href="/memory/customers/1">Maria (+15551234567)</a>' in html
    assert '<a href="/memory/calls/' in html

    orders = await get_json(ds, "/memory/orders.json", _labels="on", _shape="array")
    assert orders[0]["customer_id"] == {"value": 1, "label": "Maria (+15551234567)"}


@pytest.mark.parametrize("name", list(QUERY_PARAMS))
async def test_every_canned_query_runs_and_returns_rows(ds, name):
    rows = await get_json(ds, f"/memory/{name}.json", _shape="array", **QUERY_PARAMS[name])
    assert rows, name


def test_every_canned_query_is_covered_by_the_tests():
    assert set(load_metadata()["databases"]["memory"]["queries"]) == set(QUERY_PARAMS)


async def test_caller_query_shows_profile_orders_feedback_and_transcript(ds):
    rows = await get_json(ds, "/memory/caller.json", _shape="array", identity="+15551234567")
    kinds = {row["kind"] for row in rows}

    assert kinds == {"customer", "call", "order", "feedback", "message"}
    assert "Maria (+15551234567): 2 calls, 2 orders, $73.00 spent" in [r["detail"] for r in rows]


async def test_low_ratings_come_with_their_transcripts(ds):
    [row] = await get_json(ds, "/memory/low_ratings.json", _shape="array")
    assert row["rating"] == 2
    assert "user: Two margheritas with extra basil and a tiramisu" in row["transcript"]


async def test_full_text_search_finds_a_phrase_a_caller_said(ds):
    found = await get_json(ds, "/memory/messages.json", _search='"pizza arrived cold"', role="user", _shape="array")
    assert [row["content"] for row in found] == ["Two. The pizza arrived cold"]
    feedback = await get_json(ds, "/memory/feedback.json", _search="cold", _shape="array")
    assert [row["comment"] for row in feedback] == ["the pizza arrived cold"]


def test_datasette_command_serves_the_live_file_with_the_metadata(tmp_path):
    command = datasette_command(tmp_path / "memory.db", tmp_path / "metadata.json", port=9000)

    assert command[:5] == [sys.executable, "-m", "memory_agent.datasette.serve", "serve", str(tmp_path / "memory.db")]
    assert str(tmp_path / "memory.db") in command and "--metadata" in command
    assert "--immutable" not in command and "-i" not in command


def test_inspect_serves_a_database_with_any_file_name(filled_db, tmp_path):
    renamed = tmp_path / "bella.db"
    filled_db.rename(renamed)
    for suffix in ("-wal", "-shm"):
        side = filled_db.with_name(filled_db.name + suffix)
        if side.exists():
            side.rename(renamed.with_name(renamed.name + suffix))

    with serve(renamed, tmp_path) as served, served.client() as client:
        response = client.get("/bella/caller.json", params={"identity": "+15551234567", "_shape": "array"})

    assert response.status_code == 200
    assert any(row["kind"] == "order" for row in response.json())


def test_inspect_without_datasette_prints_the_install_command(db_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "datasette", None)  # as if the extra were not installed

    assert inspect_database(db_path) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and INSTALL_COMMAND in err


def test_inspect_refuses_a_file_that_is_not_a_memory_agent_database(tmp_path, capsys):
    (tmp_path / "notes.db").write_text("hello")

    assert inspect_database(tmp_path / "notes.db") == 1
    err = capsys.readouterr().err
    assert err == f"memory-agent inspect: {tmp_path / 'notes.db'} is not a SQLite database\n"


async def test_owners_see_the_allergy_roster_preferences_and_kitchen_notes(repo, db_path):
    steps = [
        Say("Welcome! Your name?"),
        ToolCall("save_customer_name", {"name": "Anna"}),
        ToolCall("remember_allergy", {"allergen": "prawns"}),
        ToolCall("remember_preference", {"about": "crust", "preference": "well done"}),
        Say("Noted, Anna."),
        Say("What would you like?"),
        ToolCall("add_to_order", {"item": "margherita_pizza"}),
        Say("Place it?"),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "+15557654321", steps, ["..."] * 6, trust_caller_id=True)
    register_plugin()
    ds = Datasette([str(db_path)], metadata=load_metadata(db_path.stem))
    await ds.invoke_startup()

    roster = await get_json(ds, "/memory/allergy_roster.json", _shape="array")
    assert [(r["customer"], r["allergen"], r["as_said"]) for r in roster] == [
        ("Anna (+15557654321)", "crustacean shellfish", "prawns")
    ]
    prefs = await get_json(ds, "/memory/caller_preferences.json", _shape="array")
    assert [(r["about"], r["preference"]) for r in prefs] == [("crust", "well done")]
    lines = await get_json(ds, "/memory/order_lines.json", _shape="array")
    assert [r["kitchen_note"] for r in lines] == ["Allergies: crustacean shellfish"]
