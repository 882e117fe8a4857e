"""The OrderTaker's and Feedback agent's tools: menu prices, parallel calls, and hostile arguments."""

from __future__ import annotations

import pytest

from conftest import lookup_stalled, rows, scripted_call
from memory_agent import start_call
from memory_agent.call import CallConfig
from memory_agent.identity import Caller
from memory_agent.memory import as_data
from memory_agent.scripted_llm import Say, ScriptedLLM, ToolCall

TO_ORDER_TAKER = [Say("Welcome! Your name?"), ToolCall("transfer_to_order_taker"), Say("What would you like?")]
TO_FEEDBACK = [*TO_ORDER_TAKER, ToolCall("transfer_to_feedback"), Say("How was it, 1 to 5?")]


def tool_outputs(llm) -> list[str]:
    """Every tool output the LLM was shown, in order."""
    last = llm.requests[-1].chat_ctx
    return [item.output for item in last.items if item.type == "function_call_output"]


async def test_totals_come_from_the_menu_even_when_the_llm_sends_a_price(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "caesar_salad", "quantity": 2, "price": 1, "unit_price_cents": 1}),
        Say("Two Caesar salads."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "carla", steps, ["hi", "two caesar salads", "yes"])

    assert rows(db_path, "SELECT unit_price_cents, quantity FROM order_items") == [(975, 2)]
    assert rows(db_path, "SELECT status, subtotal_cents, total_cents FROM orders") == [("placed", 1950, 1950)]


async def test_parallel_tool_calls_in_one_response_both_land(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        (
            ToolCall("add_to_order", {"item": "spaghetti carbonara"}),
            ToolCall("add_to_order", {"item": "sparkling water", "quantity": 3}),
            ToolCall("add_to_order", {"item": "a tiramisu"}),
        ),
        Say("Got it."),
    ]
    call, _ = await scripted_call(repo, "dan", steps, ["hi", "carbonara, three waters and a tiramisu"])

    assert rows(db_path, "SELECT menu_item, quantity, unit_price_cents FROM order_items ORDER BY position") == [
        ("spaghetti_carbonara", 1, 1525),
        ("sparkling_water", 3, 300),
        ("tiramisu", 1, 750),
    ]
    assert call.userdata.order.total_cents == 1525 + 900 + 750


async def test_same_item_twice_adds_up_on_one_line(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("One."),
        ToolCall("add_to_order", {"item": "Tiramisu", "quantity": 2}),
        Say("Three."),
    ]
    await scripted_call(repo, "eve", steps, ["hi", "a tiramisu", "two more"])

    assert rows(db_path, "SELECT menu_item, quantity FROM order_items") == [("tiramisu", 3)]


async def test_remove_from_order(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        (ToolCall("add_to_order", {"item": "tiramisu"}), ToolCall("add_to_order", {"item": "pepperoni"})),
        Say("OK."),
        ToolCall("remove_from_order", {"item": "tiramisu"}),
        Say("Removed."),
    ]
    await scripted_call(repo, "fay", steps, ["hi", "tiramisu and pepperoni", "no tiramisu"])

    assert rows(db_path, "SELECT menu_item FROM order_items") == [("pepperoni_pizza",)]
    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("abandoned", 1600)]


async def test_payment_method_and_tip_are_computed_in_cents(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "margherita"}),
        Say("OK."),
        ToolCall("set_payment_method", {"method": "card", "tip_percent": 15}),
        Say("Card, 15%."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "gus", steps, ["hi", "a margherita", "card, 15 percent tip", "yes"])

    # 15% of $14.50 is $2.175, rounded half up to $2.18
    assert rows(db_path, "SELECT subtotal_cents, tip_cents, total_cents, payment_method FROM orders") == [
        (1450, 218, 1668, "card")
    ]


async def test_placed_order_cannot_change(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "margherita"}),
        Say("OK."),
        ToolCall("confirm_order"),
        Say("Placed."),
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("Sorry."),
    ]
    _, llm = await scripted_call(repo, "hal", steps, ["hi", "a margherita", "yes", "and a tiramisu"])

    # Once placed, the call is with the Feedback agent, which has no way to change an order.
    assert "Unknown function: add_to_order" in tool_outputs(llm)[-1]
    assert rows(db_path, "SELECT menu_item FROM order_items") == [("margherita_pizza",)]


HOSTILE_ORDER_CALLS = [
    ("add_to_order", {"item": "sushi"}, "not on the menu"),
    ("add_to_order", {"item": "pizza"}, "not on the menu"),
    ("add_to_order", {"item": ""}, "not on the menu"),
    ("add_to_order", {"item": "x" * 10_000}, "not on the menu"),
    ("add_to_order", {"item": "'; DROP TABLE orders; --"}, "not on the menu"),
    ("add_to_order", {"item": "tiramisu", "quantity": 0}, "between 1 and 20"),
    ("add_to_order", {"item": "tiramisu", "quantity": -1}, "between 1 and 20"),
    ("add_to_order", {"item": "tiramisu", "quantity": 1000}, "between 1 and 20"),
    ("add_to_order", {"item": "tiramisu", "quantity": "five"}, "quantity"),
    ("add_to_order", {"item": "tiramisu", "modifications": ["a" * 5000]}, "short notes"),
    ("add_to_order", {"item": "tiramisu", "modifications": "extra cocoa"}, "modifications"),
    ("add_to_order", {"item": 42}, "item"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), HOSTILE_ORDER_CALLS)
async def test_hostile_order_tool_input_gets_a_tool_error(repo, db_path, tool, arguments, message):
    steps = [*TO_ORDER_TAKER, ToolCall(tool, arguments), Say("Let me fix that.")]
    call, llm = await scripted_call(repo, "mallory", steps, ["hi", "do it"])

    last_output = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"][-1]
    assert last_output.is_error
    assert message in last_output.output
    assert call.userdata.order.items == []
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(0,)]
    assert rows(db_path, "PRAGMA integrity_check") == [("ok",)]


# Offered once the order has items (the confirming step): tried with a margherita in the order.
HOSTILE_CONFIRMING_CALLS = [
    ("remove_from_order", {"item": "tiramisu"}, "not in the order"),
    ("set_payment_method", {"method": "bitcoin"}, "method"),
    ("set_payment_method", {"method": "card", "tip_percent": 90}, "0 to 30"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), HOSTILE_CONFIRMING_CALLS)
async def test_hostile_input_while_confirming_gets_a_tool_error(repo, db_path, tool, arguments, message):
    steps = [*TO_ORDER_TAKER, ToolCall("add_to_order", {"item": "margherita"}), ToolCall(tool, arguments), Say("Hm.")]
    call, llm = await scripted_call(repo, "mallory", steps, ["hi", "a margherita, and do it"])

    last_output = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"][-1]
    assert last_output.is_error
    assert message in last_output.output
    assert [line.menu_item for line in call.userdata.order.items] == ["margherita_pizza"]
    assert call.userdata.order.payment_method is None
    assert not call.userdata.order.placed
    assert rows(db_path, "SELECT count(*) FROM orders WHERE status = 'placed'") == [(0,)]


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("confirm_order", {}),
        ("remove_from_order", {"item": "tiramisu"}),
        ("set_payment_method", {"method": "card"}),
        ("reorder_last_order", {}),
        ("reorder_usual", {}),
        ("recall_past_orders", {}),
    ],
)
async def test_a_new_callers_empty_order_offers_no_confirming_or_past_tools_and_calling_one_fails(
    repo, db_path, tool, arguments
):
    steps = [*TO_ORDER_TAKER, ToolCall(tool, arguments), Say("What would you like?")]
    call, llm = await scripted_call(repo, "mallory", steps, ["hi", "place it"])

    order_taker = [r for r in llm.requests if "add_to_order" in r.tool_names]
    assert order_taker and all(tool not in r.tool_names for r in order_taker)
    last_output = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"][-1]
    assert last_output.is_error and f"Unknown function: {tool}" in last_output.output
    assert call.userdata.order.items == [] and not call.userdata.order.placed
    assert rows(db_path, "SELECT count(*) FROM orders") == [(0,)]


HOSTILE_FEEDBACK_CALLS = [
    ("record_feedback", {"rating": 0}, "from 1 to 5"),
    ("record_feedback", {"rating": 6}, "from 1 to 5"),
    ("record_feedback", {"rating": "five"}, "rating"),
    ("record_feedback", {"rating": 3, "comment": "c" * 10_000}, "at most 1000"),
    ("save_email", {"email": "not an email"}, "not a valid email"),
    ("save_email", {"email": "maria@@example"}, "not a valid email"),
    ("save_email", {"email": ""}, "not a valid email"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), HOSTILE_FEEDBACK_CALLS)
async def test_hostile_feedback_tool_input_gets_a_tool_error(repo, db_path, tool, arguments, message):
    steps = [*TO_FEEDBACK, ToolCall(tool, arguments), Say("Could you repeat that?")]
    _, llm = await scripted_call(repo, "mallory", steps, ["hi", "nothing", "whatever"])

    last_output = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"][-1]
    assert last_output.is_error
    assert message in last_output.output
    assert rows(db_path, "SELECT count(*) FROM feedback") == [(0,)]


STORED_SAFELY = [
    'O\'Brien "Bob"',
    "Robert'); DROP TABLE customers;--",
    "Zoë 🍕",
    "מרים",
    "Ana\u202eevil",
]


@pytest.mark.parametrize("name", STORED_SAFELY)
async def test_odd_names_are_stored_exactly_and_remembered(repo, db_path, name):
    steps = [Say("Your name?"), ToolCall("save_customer_name", {"name": name}), Say("Thanks!")]
    await scripted_call(repo, "nina", steps, [f"I'm {name}"])
    _, llm = await scripted_call(repo, "nina", [Say("Welcome back!")])

    stored = rows(db_path, "SELECT name FROM customers")[0][0]
    assert stored == name.replace("\u202e", "")
    assert as_data(stored) in llm.requests[0].instructions  # as escaped data, never as prose
    assert rows(db_path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("name", ["", "   ", "\x00\x07", "n" * 10_000])
async def test_unusable_names_get_a_tool_error(repo, db_path, name):
    steps = [Say("Your name?"), ToolCall("save_customer_name", {"name": name}), Say("Sorry?")]
    _, llm = await scripted_call(repo, "olga", steps, ["..."])

    assert [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"][-1].is_error
    assert rows(db_path, "SELECT name FROM customers") == [(None,)]


async def test_feedback_comment_with_quotes_and_emoji_round_trips(repo, db_path):
    comment = 'Great "carbonara", 10/10 😋 — but, the wait...'
    steps = [*TO_FEEDBACK, ToolCall("record_feedback", {"rating": 5, "comment": comment}), Say("Thanks!")]
    await scripted_call(repo, "paul", steps, ["hi", "nothing today", comment])

    assert rows(db_path, "SELECT rating, comment FROM feedback") == [(5, comment)]


async def test_email_is_saved_on_the_customer_and_validated(repo, db_path):
    steps = [*TO_FEEDBACK, ToolCall("save_email", {"email": " maria@example.com "}), Say("Saved.")]
    await scripted_call(repo, "quinn", steps, ["hi", "nothing", "maria@example.com"])

    assert rows(db_path, "SELECT email FROM customers") == [("maria@example.com",)]


async def test_tip_follows_the_order_after_later_changes(repo, db_path):
    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "margherita"}),
        Say("OK."),
        ToolCall("set_payment_method", {"method": "card", "tip_percent": 10}),
        Say("10%."),
        ToolCall("add_to_order", {"item": "tiramisu", "quantity": 2}),
        Say("And two tiramisu."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "ivy", steps, ["hi", "a margherita", "card, 10 percent", "two tiramisu", "yes"])

    # 10% of $29.50 is $2.95
    assert rows(db_path, "SELECT subtotal_cents, tip_cents, total_cents FROM orders") == [(2950, 295, 3245)]


async def test_reorder_twice_does_not_double_the_order(repo, db_path):
    first = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "tiramisu", "quantity": 2}),
        Say("OK."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "jay", first, ["hi", "two tiramisu", "yes"])
    again = [
        *TO_ORDER_TAKER,
        ToolCall("reorder_last_order"),
        Say("Same again."),
        ToolCall("reorder_last_order"),
        Say("Already in."),
    ]
    _, llm = await scripted_call(repo, "jay", again, ["hi", "the same", "the same as last time"])

    assert "already in this order" in tool_outputs(llm)[-1]
    assert rows(
        db_path,
        "SELECT quantity FROM order_items JOIN orders ON orders.id = order_id WHERE orders.status = 'abandoned'",
    ) == [(2,)]


async def test_reorder_finds_the_last_order_when_the_greeting_went_without_memory(repo, db_path):
    first = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "pepperoni"}),
        Say("OK."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await scripted_call(repo, "kim", first, ["hi", "a pepperoni", "yes"])

    llm = ScriptedLLM(
        [
            Say("Welcome!"),
            ToolCall("transfer_to_order_taker"),
            Say("What would you like?"),
            ToolCall("reorder_last_order"),
            Say("The same again."),
        ]
    )
    with lookup_stalled() as (release, authorizer):
        await repo.reader.set_authorizer(authorizer)
        call = await start_call(repo, Caller.typed("kim"), CallConfig(recall_budget_s=0.05), llm=llm)
        await call.greeting
        assert call.userdata.memory is None
        release.set()
    await repo.reader.set_authorizer(None)
    for line in ["hi", "the same as last time"]:
        await call.session.run(user_input=line)
    await call.finish()

    assert "Pepperoni Pizza" in tool_outputs(llm)[-1]
    assert rows(
        db_path,
        "SELECT menu_item FROM order_items JOIN orders ON orders.id = order_id WHERE orders.call_id = ?",
        (call.call_id,),
    ) == [("pepperoni_pizza",)]


async def test_anonymous_caller_is_told_an_email_cannot_be_kept(repo, db_path):
    steps = [*TO_FEEDBACK, ToolCall("save_email", {"email": "anon@example.com"}), Say("Sorry, I can't.")]
    _, llm = await scripted_call(repo, None, steps, ["hi", "nothing", "anon@example.com"])

    assert "cannot keep an email" in tool_outputs(llm)[-1]
