"""The end-of-call write is one transaction: all of it lands, or none of it, and it can be repeated."""

from __future__ import annotations

import pytest

from conftest import rows
from db import CallRecord, FeedbackRecord, ItemRecord, MessageRecord, OrderRecord, RepositoryError

WHEN = "2025-01-02T10:00:00.000000+00:00"


def record(call_id: str, customer_id: int | None, feedback: FeedbackRecord | None = None) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        customer_id=customer_id,
        caller_name="Maria",
        order=OrderRecord(
            status="placed",
            items=[ItemRecord(menu_item_id="tiramisu", name="Tiramisu", quantity=2, unit_price_cents=750)],
        ),
        feedback=feedback or FeedbackRecord(rating=5, comment="lovely"),
        messages=[MessageRecord(role="user", content=f"line {i}", created_at=WHEN) for i in range(60)],
        ended_at=WHEN,
        end_reason="participant_disconnected",
    )


async def test_finalize_twice_writes_the_call_once(repo, db_path):
    customer_id = await repo.open_call(call_id="c1", identity="alice", started_at=WHEN)

    await repo.finalize_call(record("c1", customer_id))
    await repo.finalize_call(record("c1", customer_id))

    customer = rows(db_path, "SELECT order_count, lifetime_spend_cents, last_rating FROM customers")
    assert customer == [(1, 1500, 5)]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM messages") == [(60,)]


async def test_a_failing_finalize_leaves_nothing_behind_and_the_next_write_works(repo, db_path):
    customer_id = await repo.open_call(call_id="c1", identity="alice", started_at=WHEN)
    # Bypasses validation so the database's CHECK fails after the call and order rows were written.
    broken = FeedbackRecord.model_construct(rating=9, comment="")

    with pytest.raises(RepositoryError, match="CHECK constraint failed"):
        await repo.finalize_call(record("c1", customer_id, feedback=broken))

    assert rows(db_path, "SELECT count(*) FROM orders") == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM messages") == [(0,)]
    assert rows(db_path, "SELECT order_count FROM customers") == [(0,)]
    await repo.finalize_call(record("c1", customer_id))
    assert rows(db_path, "SELECT order_count FROM customers") == [(1,)]
