"""The end-of-call write: idempotent, and one bad row never loses the rest of the call."""

from __future__ import annotations

from conftest import open_call
from db import CallSnapshot, Feedback, Message, Order, OrderLine

WHEN = "2025-01-02T10:00:00.000000+00:00"


def record(call_id: str, feedback: Feedback | None = None) -> CallSnapshot:
    return CallSnapshot(
        call_id=call_id,
        identity="alice",
        caller_name="Maria",
        order=Order(
            status="placed",
            items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=2, unit_price_cents=750)],
        ),
        feedback=feedback or Feedback(rating=5, comment="lovely"),
        messages=[Message(role="user", content=f"line {i}", created_at=WHEN) for i in range(60)],
        ended_at=WHEN,
        end_reason="participant_disconnected",
    )


async def test_finalize_twice_writes_the_call_once(any_repo, backend):
    await open_call(any_repo, call_id="c1", identity="alice", started_at=WHEN)

    await any_repo.save_call(record("c1"), forced=True)
    await any_repo.save_call(record("c1"), forced=True)

    customer = backend.rows("SELECT call_count, order_count, lifetime_spend_cents, last_rating FROM customers")
    assert customer == [(1, 1, 1500, 5)]
    assert backend.rows("SELECT count(*) FROM order_items") == [(1,)]
    assert backend.rows("SELECT count(*) FROM messages") == [(60,)]


async def test_a_bad_row_is_left_out_and_the_rest_of_the_call_is_kept(any_repo, backend, caplog):
    await open_call(any_repo, call_id="c1", identity="alice", started_at=WHEN)
    # Bypasses validation so the database's CHECK refuses the feedback row.
    broken = Feedback.model_construct(rating=9, comment="")

    await any_repo.save_call(record("c1", feedback=broken), forced=True)

    assert backend.rows("SELECT status, total_cents FROM orders") == [("placed", 1500)]
    assert backend.rows("SELECT count(*) FROM messages") == [(60,)]
    assert backend.rows("SELECT ended_at FROM calls") == [(WHEN,)]
    assert backend.rows("SELECT count(*) FROM feedback") == [(0,)]
    assert backend.rows("SELECT order_count, last_rating FROM customers") == [(1, None)]
    assert "without 1 part(s)" in caplog.text and "check constraint" in caplog.text.lower()


async def test_a_snapshot_older_than_the_calls_end_changes_nothing(any_repo, backend):
    await any_repo.save_call(record("c1"), forced=True)
    before = backend.rows("SELECT * FROM orders"), backend.rows("SELECT count(*) FROM messages")

    late = record("c1").model_copy(update={"ended_at": None, "end_reason": None, "messages": [], "caller_name": "X"})
    await any_repo.save_call(late)

    assert (backend.rows("SELECT * FROM orders"), backend.rows("SELECT count(*) FROM messages")) == before
    assert backend.rows("SELECT caller_name FROM calls") == [("Maria",)]
