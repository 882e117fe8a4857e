"""However a call ends, finalize writes its record exactly once."""

from __future__ import annotations

import asyncio

from conftest import scripted_call
from memory_agent.call import call_snapshot
from memory_agent.scripted_llm import Say, ToolCall

MID_ORDER_STEPS = [
    Say("Welcome to Bella Vista! Your name?"),
    ToolCall("save_customer_name", {"name": "Leo"}),
    Say("Hi Leo."),
    Say("What would you like?"),
    ToolCall("add_to_order", {"item": "pepperoni_pizza", "quantity": 2}),
    Say("Two pepperoni pizzas. Anything else?"),
]
MID_ORDER_LINES = ["Leo here", "I want to order", "Two pepperoni pizzas"]


def snapshot(backend):
    return {
        table: backend.rows(f"SELECT * FROM {table} ORDER BY 1")
        for table in ("customers", "calls", "orders", "order_items", "feedback", "messages")
    }


async def test_call_closed_mid_order_leaves_abandoned_order_with_items_and_transcript(any_repo, backend):
    call, _ = await scripted_call(any_repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)
    # the caller says one more thing and hangs up before the agent answers
    call.session.generate_reply(user_input="Actually, hold on")
    await call.finish("participant_disconnected")

    assert backend.rows("SELECT status, total_cents FROM orders") == [("abandoned", 3200)]
    assert backend.rows("SELECT menu_item, quantity FROM order_items") == [("pepperoni_pizza", 2)]
    said = [r[0] for r in backend.rows("SELECT content FROM messages WHERE role = 'user' ORDER BY seq")]
    assert said == [*MID_ORDER_LINES, "Actually, hold on"]
    assert backend.rows("SELECT end_reason FROM calls") == [("participant_disconnected",)]
    assert backend.rows("SELECT order_count, last_order_id FROM customers") == [(0, None)]


async def test_order_in_progress_is_written_before_the_call_ends(any_repo, backend):
    call, _ = await scripted_call(any_repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)
    await call.journal.flush()  # checkpoints are written in the background, without making the caller wait

    assert backend.rows("SELECT status, total_cents FROM orders") == [("in_progress", 3200)]
    assert backend.rows("SELECT name FROM customers") == [("Leo",)]
    assert backend.rows("SELECT ended_at FROM calls") == [(None,)]
    await call.finish()


async def test_finish_twice_gives_the_same_rows(any_repo, backend):
    call, _ = await scripted_call(any_repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES)
    before = snapshot(backend)

    await call.finish()
    await call.finish("something_else")
    assert snapshot(backend) == before


async def test_the_write_repeated_with_one_record_changes_nothing_the_second_time(any_repo, backend):
    call, _ = await scripted_call(any_repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES)
    before = snapshot(backend)

    # as a spool replay would write it, after the call's own end
    record = call_snapshot(call.userdata, call.session.history, "something_else")
    await any_repo.save_call(record)
    once = snapshot(backend)
    await any_repo.save_call(record)
    assert snapshot(backend) == once
    assert {table: len(found) for table, found in once.items()} == {t: len(f) for t, f in before.items()}


async def test_finish_concurrent_with_the_sessions_own_close(any_repo, backend):
    call, _ = await scripted_call(any_repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)

    await asyncio.gather(call.session.aclose(), call.finish(), call.finish())
    await call.finish()

    assert backend.rows("SELECT count(*) FROM orders") == [(1,)]
    assert backend.rows("SELECT count(*) FROM order_items") == [(1,)]
    assert backend.rows("SELECT count(*) FROM calls WHERE ended_at IS NOT NULL") == [(1,)]
    user_rows = backend.rows("SELECT count(*) FROM messages WHERE role = 'user'")
    assert user_rows == [(len(MID_ORDER_LINES),)]
    assert backend.rows("SELECT end_reason FROM calls") == [("user_initiated",)]


async def test_session_close_alone_finalizes_the_call(any_repo, backend):
    call, _ = await scripted_call(any_repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)

    await call.session.aclose()
    assert call.closing is not None
    await call.closing

    assert call.finished
    assert backend.rows("SELECT status FROM orders") == [("abandoned",)]
    assert backend.rows("SELECT count(*) FROM messages WHERE call_id = ?", (call.call_id,))[0][0] > 0
