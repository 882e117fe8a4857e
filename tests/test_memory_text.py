"""The memory text the agents get is short and bounded whatever the caller's history."""

from __future__ import annotations

from db import CustomerMemory, PastItem
from memory_agent.memory import memory_text


def memory(**overrides) -> CustomerMemory:
    fields = dict(
        customer_id=1,
        name="Maria",
        email=None,
        call_count=3,
        order_count=2,
        lifetime_spend_cents=7300,
        last_order_at="2026-11-15T18:00:00+00:00",
        last_order_total_cents=3650,
        last_order_items=(PastItem(menu_item_id="tiramisu", name="Tiramisu", quantity=1, modifications=[]),),
        last_rating=5,
        last_feedback_comment="lovely",
    )
    return CustomerMemory(**{**fields, **overrides})


def test_new_caller():
    assert "new caller" in memory_text(None)


def test_low_rating_asks_for_an_apology_and_high_rating_does_not():
    assert "Apologize" in memory_text(memory(last_rating=1, last_feedback_comment="cold"))
    assert "Apologize" not in memory_text(memory(last_rating=5))


def test_memory_text_is_bounded_for_a_huge_history():
    items = tuple(
        PastItem(menu_item_id="tiramisu", name="Tiramisu", quantity=20, modifications=["m" * 80] * 5) for _ in range(20)
    )
    text = memory_text(
        memory(
            name="N" * 10_000,
            order_count=1000,
            lifetime_spend_cents=10**9,
            last_order_items=items,
            last_rating=1,
            last_feedback_comment="c" * 10_000,
            email="x@example.com",
        )
    )
    assert len(text) <= 1500
    assert "12 more items" in text


def test_unknown_name_is_not_invented():
    text = memory_text(memory(name=None))
    assert "never learned" in text
    assert "never ask for it again" not in text
