"""Each call's outcome, its transfer, its order's ready time and the messages it took: on both backends."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg

from conftest import Backend, scripted_call
from db import CallSnapshot, Order, OrderLine, Repository, kitchen
from db.clock import to_iso
from db.kitchen_queue import kitchen_queue
from db.schema.models import StaffMessage
from db.statements.privacy import ASKED_ON_CALL
from memory_agent.scripted_llm import Say, ToolCall

PIZZA = OrderLine(menu_item="margherita_pizza", name="Margherita Pizza", quantity=1, unit_price_cents=1450)
START = "2026-12-08T23:00:00.000000+00:00"
MESSAGE = StaffMessage(
    request="Call back about a booking", callback_number="+14155550134", reason="other", created_at=START
)


async def _rows(repo: Repository, sql: str, *params: object) -> list[tuple]:
    return [tuple(row) for row in await repo.read(sql, params)]


async def _call(repo: Repository, call_id: str, **parts: object) -> None:
    await repo.save_call(CallSnapshot(call_id=call_id, identity="+14155550134", started_at=START, **parts))


async def test_the_outcome_is_written_with_the_final_record_and_stands(any_repo):
    await _call(
        any_repo,
        "c1",
        restaurant_open=False,
        transfer_reason="other",
        transfer_status="failed",
        staff_messages=[MESSAGE],
        outcome="message_taken",
    )  # not final: no outcome yet
    assert await _rows(any_repo, "SELECT outcome, restaurant_open FROM calls") == [(None, 0)]
    await _call(
        any_repo,
        "c1",
        ended_at=START,
        end_reason="participant_disconnected",
        outcome="message_taken",
        restaurant_open=False,
        staff_messages=[MESSAGE, MESSAGE],
    )
    await _call(any_repo, "c1", ended_at=START, end_reason="late replay", outcome="hung_up")
    rows = await any_repo.read(
        "SELECT outcome, restaurant_open, transfer_reason, transfer_status FROM calls WHERE id = ?", ["c1"]
    )
    assert [tuple(r) for r in rows] == [("message_taken", 0, "other", "failed")]
    messages = await any_repo.read(
        "SELECT position, request, callback_number FROM staff_messages ORDER BY position", []
    )
    assert [tuple(r) for r in messages] == [
        (1, "Call back about a booking", "+14155550134"),
        (2, "Call back about a booking", "+14155550134"),
    ]


async def test_the_ready_time_is_stored_on_the_placed_order_and_makes_the_kitchens_queue(any_repo):
    now = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    for n, ready in enumerate(
        ("2026-12-08T23:20:00.000000+00:00", "2026-12-08T23:25:00.000000+00:00", "2026-12-09T02:00:00.000000+00:00"),
        start=1,
    ):
        await _call(any_repo, f"o{n}", order=Order(status="placed", items=[PIZZA], ready_at=ready))
    assert (await _rows(any_repo, "SELECT ready_at FROM orders ORDER BY id"))[0] == (
        "2026-12-08T23:20:00.000000+00:00",
    )
    assert await kitchen_queue(any_repo, now=now, until=now + timedelta(hours=1)) == 2  # the later one waits
    assert await kitchen_queue(any_repo, now=now + timedelta(minutes=21), until=now + timedelta(hours=1)) == 1
    assert await kitchen_queue(any_repo, now=now, until=now + timedelta(hours=4)) == 3


def _move_ticket(backend: Backend, order_id: int, status: str) -> None:
    """What the kitchen board writes (``db.kitchen.move_ticket``), on the backend under test."""
    if backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(backend.target)) as conn, conn:
            kitchen.move_ticket(conn, order_id, status, "Marco", START)
        return
    with psycopg.connect(backend.target, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ticket_changes (order_id, status, changed_by, changed_at) VALUES (%s, %s, %s, %s)",
            (order_id, status, "Marco", START),
        )


async def test_the_queue_is_what_the_kitchen_still_has_to_make_by_the_boards_statuses(any_repo, backend):
    now = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    later = now + timedelta(hours=1)
    for n, minutes in enumerate((20, 25, 30, -10, -15), start=1):  # three ahead, two past their ready time
        ready = to_iso(now + timedelta(minutes=minutes))
        await _call(any_repo, f"o{n}", order=Order(status="placed", items=[PIZZA], ready_at=ready))
    ids = [row[0] for row in await _rows(any_repo, "SELECT id FROM orders ORDER BY id")]
    assert await kitchen_queue(any_repo, now=now, until=later) == 3  # untouched: gone at their ready time
    _move_ticket(backend, ids[0], "preparing")
    _move_ticket(backend, ids[1], "preparing")
    _move_ticket(backend, ids[1], "ready")  # made early: out of the queue
    _move_ticket(backend, ids[2], "collected")
    _move_ticket(backend, ids[3], "preparing")  # late: still being made, still in the way
    assert await kitchen_queue(any_repo, now=now, until=later) == 2
    assert await kitchen_queue(any_repo, now=now + timedelta(hours=13), until=later + timedelta(hours=13)) == 0


async def test_a_caller_sees_the_messages_they_left_and_erasing_them_erases_those(any_repo):
    await _call(
        any_repo,
        "c1",
        caller_name="Maria",
        staff_messages=[MESSAGE],
        ended_at=START,
        end_reason="x",
        outcome="message_taken",
    )
    [profile] = (await any_repo.export_caller("+14155550134"))["profiles"]
    assert [m["request"] for m in profile["staff_messages"]] == ["Call back about a booking"]
    erased = await any_repo.forget("+14155550134")
    assert erased.counts["staff_messages"] == 1
    assert await _rows(any_repo, "SELECT count(*) FROM staff_messages") == [(0,)]


async def test_a_caller_who_will_not_order_ends_with_no_order_and_one_who_leaves_mid_order_hung_up(repo, db_path):
    from conftest import rows

    to_order_taker = [Say("Hi! Your name?"), ToolCall("transfer_to_order_taker"), Say("What would you like?")]
    await scripted_call(
        repo, "ann", [*to_order_taker, ToolCall("transfer_to_feedback"), Say("Rate us?")], ["hi", "nothing today"]
    )
    await scripted_call(
        repo, "ben", [*to_order_taker, ToolCall("add_to_order", {"item": "tiramisu"}), Say("OK.")], ["hi", "a tiramisu"]
    )
    call, _ = await scripted_call(
        repo, "cat", [*to_order_taker, ToolCall("forget_me", {"confirmed": True}), Say("Done.")], ["hi"], finish=False
    )
    assert call.userdata.outcome() == "hung_up"  # an anonymous caller has nothing to erase
    await call.finish()
    assert rows(db_path, "SELECT outcome FROM calls ORDER BY started_at") == [("no_order",), ("hung_up",), ("hung_up",)]


FORGET_ME = [
    Say("Welcome! Your name?"),
    ToolCall("save_customer_name", {"name": "Quinn"}),
    Say("Hi Quinn!"),
    ToolCall("forget_me", {"confirmed": True}),
    Say("We will forget you when we hang up."),
]


async def test_a_call_that_ends_in_an_erasure_is_still_counted_without_anything_personal(any_repo):
    call, _ = await scripted_call(
        any_repo, "+14155550134", FORGET_ME, ["I'm Quinn", "forget me"], finish=False, trust_caller_id=True
    )
    assert call.userdata.outcome() == "erased"
    await call.finish()
    await any_repo.forget("+14155550177")  # the owner's erasure of another number: not a call's outcome

    assert await _rows(any_repo, "SELECT count(*) FROM calls") == [(0,)]  # the call went with the caller
    audit = [json.loads(counts) for (counts,) in await _rows(any_repo, "SELECT counts FROM erasures ORDER BY id")]
    assert [entry.get(ASKED_ON_CALL) for entry in audit] == [1, None]
    assert audit[0]["calls"] == 1
    found = await _rows(any_repo, "SELECT subject, counts, scope FROM erasures")
    assert not any("Quinn" in str(value) or "4155550134" in str(value) for row in found for value in row)
