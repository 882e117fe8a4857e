"""The kitchen board's data and its writes: today's tickets, status moves and sold-out dishes, each recorded
with who and when; a dish sold out is refused by the agent's next add_to_order."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import rows, scripted_call
from db import CallSnapshot, Order, OrderLine, Repository, kitchen
from db.clock import utcnow_iso
from db.errors import NotFound
from memory_agent.datasette import kitchen as kitchen_board
from memory_agent.menu import load_menu
from memory_agent.restaurant import Restaurant
from memory_agent.scripted_llm import Say, ToolCall
from test_dashboard import _datasette, chart_rows, cookies
from test_order_tools import TO_ORDER_TAKER, tool_outputs

ZONE = "America/New_York"
LINES = [
    OrderLine(menu_item="margherita_pizza", name="Margherita Pizza", quantity=2, unit_price_cents=1450,
              modifications=["well done", "no basil"]),
    OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750),
]  # fmt: skip


async def place(repo: Repository, call_id: str, name: str, note: str | None = None) -> int:
    now = utcnow_iso()
    await repo.save_call(
        CallSnapshot(
            call_id=call_id,
            identity="+15550002222",
            started_at=now,
            caller_name=name,
            order=Order(status="placed", items=LINES, kitchen_note=note),
        )
    )
    return int((await repo.read("SELECT id FROM orders WHERE call_id = ?", (call_id,)))[0][0])


@pytest.fixture
async def ds(repo, db_path: Path):
    return await _datasette(db_path, timezone=ZONE)


async def board(ds) -> dict:
    response = await ds.client.get("/-/kitchen.json", cookies=cookies(ds))
    assert response.status_code == 200, response.text[:300]
    return response.json()


async def test_todays_orders_are_tickets_with_first_name_items_and_the_allergy_note(repo, ds):
    number = await place(repo, "c1", "Maria Rossi", "ALLERGY: peanuts (the caller: 'nuts make me ill')")

    [ticket] = (await board(ds))["tickets"]
    assert ticket["number"] == number and ticket["first_name"] == "Maria" and ticket["status"] == "new"
    assert ticket["allergy_note"] == "ALLERGY: peanuts (the caller: 'nuts make me ill')"
    assert ticket["items"] == [
        {"name": "Margherita Pizza", "quantity": 2, "modifications": ["well done", "no basil"]},
        {"name": "Tiramisu", "quantity": 1, "modifications": []},
    ]
    assert len(ticket["placed_at"]) == 5  # HH:MM, the restaurant's local time


async def test_a_status_move_is_recorded_with_who_and_when(repo, ds, db_path):
    number = await place(repo, "c1", "Maria")
    for status in ("preparing", "ready"):
        moved = await ds.client.post(
            "/-/kitchen/ticket", json={"order": number, "status": status, "by": "Marco"}, cookies=cookies(ds)
        )
        assert moved.status_code == 200, moved.text

    assert (await board(ds))["tickets"][0]["status"] == "ready"
    changes = rows(db_path, "SELECT order_id, status, changed_by, changed_at FROM ticket_changes ORDER BY id")
    assert [c[:3] for c in changes] == [(number, "preparing", "Marco (root)"), (number, "ready", "Marco (root)")]
    assert all(c[3].endswith("+00:00") for c in changes)


@pytest.mark.parametrize(
    "body, error",
    [
        ({"order": 1, "status": "eaten"}, "unknown status 'eaten'"),
        ({"order": 999, "status": "ready"}, "no placed order 999"),
    ],
)
async def test_a_bad_move_is_refused_in_one_line(repo, ds, db_path, body, error):
    await place(repo, "c1", "Maria")
    refused = await ds.client.post("/-/kitchen/ticket", json=body, cookies=cookies(ds))
    assert refused.status_code == 400 and error in refused.json()["error"]
    assert rows(db_path, "SELECT count(*) FROM ticket_changes") == [(0,)]


async def test_the_board_needs_the_login_and_its_writes_need_json(repo, ds, db_path):
    number = await place(repo, "c1", "Maria")
    assert (await ds.client.get("/-/kitchen.json")).status_code == 403
    assert (await ds.client.get("/-/kitchen")).status_code == 403
    anonymous = await ds.client.post("/-/kitchen/ticket", json={"order": number, "status": "ready"})
    assert anonymous.status_code == 403
    form = await ds.client.post(
        "/-/kitchen/ticket", data={"order": str(number), "status": "ready"}, cookies=cookies(ds)
    )
    assert form.status_code in (400, 403)
    assert rows(db_path, "SELECT count(*) FROM ticket_changes") == [(0,)]
    page = await ds.client.get("/-/kitchen", cookies=cookies(ds))
    assert page.status_code == 200 and "kitchen board" in page.text


async def test_a_dish_marked_sold_out_is_refused_by_the_next_add_to_order(repo, ds, db_path):
    marked = await ds.client.post("/-/kitchen/sold-out", json={"item": "tiramisu", "by": "Marco"}, cookies=cookies(ds))
    assert marked.status_code == 200, marked.text
    assert (await board(ds))["sold_out"][0]["menu_item"] == "tiramisu"
    assert rows(db_path, "SELECT menu_item, marked_by FROM sold_out") == [("tiramisu", "Marco (root)")]

    steps = [*TO_ORDER_TAKER, ToolCall("add_to_order", {"item": "tiramisu"}), Say("Sorry, no tiramisu today.")]
    call, llm = await scripted_call(repo, "+15550003333", steps, ["hi", "a tiramisu"], timezone=ZONE)
    assert any("Tiramisu is sold out for today" in output for output in tool_outputs(llm))
    assert call.userdata.order.items == []


async def test_an_unknown_dish_cannot_be_marked_sold_out(ds, db_path):
    refused = await ds.client.post("/-/kitchen/sold-out", json={"item": "caviar"}, cookies=cookies(ds))
    assert refused.status_code == 400 and "no dish 'caviar'" in refused.json()["error"]
    assert rows(db_path, "SELECT count(*) FROM sold_out") == [(0,)]


def test_the_board_writes_only_through_the_data_layer():
    source = Path(kitchen_board.__file__).read_text(encoding="utf-8")
    assert not re.search(r"\b(INSERT|UPDATE|DELETE|SELECT)\b", source.split('PAGE = """')[0])


async def test_a_move_commits_on_its_own_and_a_refused_one_leaves_nothing(repo, db_path):
    order = await place(repo, "o1", "Ada")
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        kitchen.move_ticket(conn, order, "preparing", "Marco", utcnow_iso())
        with pytest.raises(NotFound):
            kitchen.move_ticket(conn, order + 1, "ready", "Marco", utcnow_iso())
        kitchen.mark_sold_out(conn, "tiramisu", "2026-12-04", "Marco", utcnow_iso())
        assert not conn.in_transaction
    assert rows(db_path, "SELECT order_id, status FROM ticket_changes") == [(order, "preparing")]
    assert rows(db_path, "SELECT menu_item FROM sold_out") == [("tiramisu",)]


async def test_the_days_board_changes_are_on_the_dashboard(repo, ds, db_path):
    order = await place(repo, "o1", "Ada <b>")
    for status in ("preparing", "ready"):
        moved = await ds.client.post(
            "/-/kitchen/ticket", json={"order": order, "status": status, "by": "Marco <i>"}, cookies=cookies(ds)
        )
        assert moved.status_code == 200, moved.text
    marked = await ds.client.post("/-/kitchen/sold-out", json={"item": "tiramisu", "by": "Lia"}, cookies=cookies(ds))
    assert marked.status_code == 200, marked.text
    today = (await board(ds))["day"]

    log = await chart_rows(ds, "kitchen_log", since=today, until=today)

    assert [row["what"] for row in log] == [
        "sold out: tiramisu",
        f"ticket #{order} ready",
        f"ticket #{order} preparing",
    ]
    assert log[1]["by"] == "Marco &lt;i&gt; (root)" and log[0]["when"].startswith(today)
    assert await chart_rows(ds, "kitchen_log", since="2020-01-01", until="2020-01-02") == []


async def test_a_dish_is_sold_out_for_the_restaurants_own_day(repo, db_path):
    # A zone whose date is not UTC's right now (12 hours behind before noon UTC, 14 ahead after).
    zone = "Etc/GMT+12" if datetime.now(UTC).hour < 12 else "Etc/GMT-14"
    far_away = Restaurant.always_open(load_menu(), timezone=zone)
    local_day, utc_day = datetime.now(ZoneInfo(zone)).date(), datetime.now(UTC).date()
    assert local_day != utc_day
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        kitchen.mark_sold_out(conn, "tiramisu", local_day.isoformat(), "Marco", utcnow_iso())
        kitchen.mark_sold_out(conn, "caesar_salad", utc_day.isoformat(), "Marco", utcnow_iso())  # not its day

    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "tiramisu"}),
        ToolCall("add_to_order", {"item": "caesar_salad"}),
        Say("One salad."),
    ]
    call, llm = await scripted_call(repo, "+15550003333", steps, ["hi", "a tiramisu and a salad"], restaurant=far_away)

    assert any("Tiramisu is sold out for today" in output for output in tool_outputs(llm))
    assert [item.menu_item for item in call.userdata.order.items] == ["caesar_salad"]
