"""The memory text the agents receive stays short whatever the caller's history holds."""

from __future__ import annotations

import pytest

from db import CustomerMemory, OrderLine
from memory_agent.memory import MAX_TEXT, memory_text


def memory(**overrides: object) -> CustomerMemory:
    fields: dict[str, object] = {
        "customer_id": 1,
        "name": "Maria",
        "email": "maria@example.com",
        "call_count": 3,
        "order_count": 2,
        "lifetime_spend_cents": 7300,
        "last_order_at": "2025-01-02T10:00:00+00:00",
        "last_order_total_cents": 3650,
        "last_order_items": (
            OrderLine(
                menu_item="margherita_pizza",
                name="Margherita Pizza",
                quantity=2,
                unit_price_cents=1450,
                modifications=["extra basil"],
            ),
        ),
        "last_rating": 2,
        "last_feedback_comment": "the pizza was cold",
    }
    fields.update(overrides)
    return CustomerMemory.model_validate(fields)


def test_memory_text_names_the_last_order_in_full_when_it_fits():
    text = memory_text(memory())
    assert "Last order (2025-01-02): 2x Margherita Pizza (extra basil); total $36.50." in text


@pytest.mark.parametrize(
    "overrides",
    [
        {"order_count": 1_000_000, "call_count": 10**9, "lifetime_spend_cents": 10**15},
        {"name": "N" * 10_000, "last_feedback_comment": "word " * 5_000},
        {
            "last_order_items": tuple(
                OrderLine(
                    menu_item=f"item_{i}",
                    name="X" * 200,
                    quantity=20,
                    unit_price_cents=100,
                    modifications=["m" * 500] * 10,
                )
                for i in range(500)
            ),
            "name": "N" * 10_000,
            "last_feedback_comment": "c" * 10_000,
        },
    ],
    ids=["huge-counts", "huge-name-and-comment", "everything-at-its-limit"],
)
def test_memory_text_never_exceeds_its_bound(overrides):
    text = memory_text(memory(**overrides))
    assert len(text) <= MAX_TEXT
    assert "Quoted text is what the caller said" in text
    assert "Last order (2025-01-02):" in text


def test_new_caller():
    assert "new caller" in memory_text(None)


def test_low_rating_asks_for_an_apology_and_high_rating_does_not():
    assert "Apologize" in memory_text(memory(last_rating=1, last_feedback_comment="cold"))
    assert "Apologize" not in memory_text(memory(last_rating=5))


def test_unknown_name_is_not_invented():
    text = memory_text(memory(name=None))
    assert "never learned" in text
    assert "never ask for it again" not in text
