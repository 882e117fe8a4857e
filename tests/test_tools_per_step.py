"""Each LLM request offers the tools of the step the call is at, read from the call when the request is made."""

from __future__ import annotations

from conftest import rows, scripted_call
from memory_agent.scripted_llm import Say, ToolCall

ALWAYS = {"transfer_to_staff", "forget_me"}
CONFIRMING = {"confirm_order", "set_payment_method", "remove_from_order"}


async def test_a_new_callers_order_goes_from_taking_items_to_confirming(repo, db_path):
    steps = [
        Say("Welcome! Your name?"),
        ToolCall("save_customer_name", {"name": "Ada"}),
        Say("Hi Ada, what would you like?"),
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("A tiramisu. Anything else?"),
        ToolCall("confirm_order"),
        Say("Placed! How was it, 1 to 5?"),
    ]
    _, llm = await scripted_call(repo, "ada", steps, ["Ada", "a tiramisu", "that's all, place it"])

    # The greeting and the name; the order taker's greeting and the item; the reply after it; placing; Feedback.
    greeter, _, taking, _, after_add, confirming, feedback = (set(r.tool_names) for r in llm.requests)
    assert greeter == ALWAYS | {"save_customer_name", "transfer_to_order_taker", "remember_allergy"}
    assert taking == ALWAYS | {"add_to_order", "remember_allergy", "remember_preference", "transfer_to_feedback"}
    # The reply after the item was added is a new request: it offers the confirming step already.
    assert after_add == confirming == (taking - {"transfer_to_feedback"}) | CONFIRMING | {"set_pickup_time"}
    assert feedback == ALWAYS | {"record_feedback", "save_email"}
    assert rows(db_path, "SELECT status FROM orders") == [("placed",)]


async def test_a_message_is_offered_once_the_transfer_did_not_go_through(repo):
    steps = [
        Say("Welcome!"),
        ToolCall("transfer_to_staff", {"reason": "asked_for_person"}),
        Say("Nobody can take the call; shall I take a message?"),
    ]
    call, llm = await scripted_call(repo, "+14155550111", steps, ["a person please"], finish=False)
    try:
        before, after = llm.requests[0], llm.requests[-1]
        assert "take_message" not in before.tool_names
        assert "take_message" in after.tool_names
        assert call.userdata.transfer_status == "unavailable"
    finally:
        await call.finish()


async def test_withdrawing_a_fact_is_offered_only_while_one_is_held(repo):
    steps = [
        Say("Welcome!"),
        ToolCall("transfer_to_order_taker"),
        Say("What would you like?"),
        ToolCall("remember_allergy", {"allergen": "peanuts"}),
        Say("Noted."),
    ]
    _, llm = await scripted_call(repo, "bo", steps, ["I'd like to order", "I'm allergic to peanuts"])

    order_taker = [set(r.tool_names) for r in llm.requests if "add_to_order" in r.tool_names]
    assert "forget_allergy" not in order_taker[0] and "forget_allergy" in order_taker[-1]
    assert all("forget_preference" not in tools for tools in order_taker)


async def test_a_tool_left_out_keeps_its_earlier_calls_in_what_the_model_sees(repo):
    steps = [
        Say("Welcome!"),
        ToolCall("transfer_to_order_taker"),
        Say("What would you like?"),
        ToolCall("remember_allergy", {"allergen": "peanuts"}),
        Say("Noted."),
        ToolCall("forget_allergy", {"allergen": "peanuts"}),
        Say("Dropped."),
    ]
    _, llm = await scripted_call(repo, "cy", steps, ["to order", "allergic to peanuts", "no, I'm not any more"])

    last = llm.requests[-1]
    assert "forget_allergy" not in last.tool_names  # nothing held any more
    said = [(item.type, getattr(item, "name", None)) for item in last.chat_ctx.items if item.type != "message"]
    assert ("function_call", "forget_allergy") in said
    assert [item.output for item in last.chat_ctx.items if item.type == "function_call_output"][-1].startswith(
        "Dropped the allergy"
    )
