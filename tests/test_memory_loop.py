"""The memory loop end to end: a caller's second call knows what the first one left."""

from __future__ import annotations

from conftest import rows, scripted_call
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS


async def test_first_call_writes_customer_order_feedback_and_transcript(repo, db_path):
    call, llm = await scripted_call(repo, "alice", FIRST_CALL_STEPS, FIRST_CALL_LINES)

    assert llm.remaining == 0
    assert rows(db_path, "SELECT participant_identity, name, order_count, lifetime_spend_cents FROM customers") == [
        ("alice", "Maria", 1, 3650)
    ]
    assert rows(db_path, "SELECT status, subtotal_cents, total_cents FROM orders") == [("placed", 3650, 3650)]
    assert rows(db_path, "SELECT menu_item, quantity, unit_price_cents, modifications FROM order_items") == [
        ("margherita_pizza", 2, 1450, '["extra basil"]'),
        ("tiramisu", 1, 750, "[]"),
    ]
    assert rows(db_path, "SELECT rating, comment FROM feedback") == [(2, "the pizza arrived cold")]
    said = [r[0] for r in rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY seq")]
    assert said == FIRST_CALL_LINES
    assert rows(db_path, "SELECT end_reason IS NOT NULL, ended_at IS NOT NULL FROM calls") == [(1, 1)]


async def test_returning_caller_is_greeted_by_name_with_last_order(repo, db_path):
    await scripted_call(repo, "alice", FIRST_CALL_STEPS, FIRST_CALL_LINES)

    _, llm = await scripted_call(repo, "alice", RETURN_CALL_STEPS, RETURN_CALL_LINES)

    greeting = llm.requests[2].instructions  # after the caller said their name
    assert '"Maria"' in greeting
    assert '"items": ["2x Margherita Pizza (extra basil)", "1x Tiramisu"]' in greeting
    assert "Apologize" in greeting
    assert "the pizza arrived cold" in greeting
    # the OrderTaker knows the name too, and is never told to ask for it
    order_taker_turn = next(r for r in llm.requests if "reorder_last_order" in r.tool_names).instructions
    assert '<caller-data>\n{"name": "Maria"' in order_taker_turn


async def test_reorder_places_the_same_items_at_menu_prices(repo, db_path):
    await scripted_call(repo, "alice", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    await scripted_call(repo, "alice", RETURN_CALL_STEPS, RETURN_CALL_LINES)

    assert rows(db_path, "SELECT status, total_cents FROM orders ORDER BY id") == [
        ("placed", 3650),
        ("placed", 3650),
    ]
    second = rows(
        db_path,
        "SELECT menu_item, quantity, modifications FROM order_items WHERE order_id = 2 ORDER BY position",
    )
    assert second == [("margherita_pizza", 2, '["extra basil"]'), ("tiramisu", 1, "[]")]
    assert rows(db_path, "SELECT call_count, order_count, lifetime_spend_cents FROM customers") == [(2, 2, 7300)]
