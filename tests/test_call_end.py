"""However a call ends, finalize writes its record exactly once."""

from __future__ import annotations

import asyncio

from conftest import rows, scripted_call
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


def snapshot(db_path):
    return {
        table: rows(db_path, f"SELECT * FROM {table} ORDER BY 1")
        for table in ("customers", "calls", "orders", "order_items", "feedback", "messages")
    }


async def test_call_closed_mid_order_leaves_abandoned_order_with_items_and_transcript(repo, db_path):
    call, _ = await scripted_call(repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)
    # the caller says one more thing and hangs up before the agent answers
    call.session.generate_reply(user_input="Actually, hold on")
    await call.finish("participant_disconnected")

    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("abandoned", 3200)]
    assert rows(db_path, "SELECT menu_item, quantity FROM order_items") == [("pepperoni_pizza", 2)]
    said = [r[0] for r in rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY seq")]
    assert said == [*MID_ORDER_LINES, "Actually, hold on"]
    assert rows(db_path, "SELECT end_reason FROM calls") == [("participant_disconnected",)]
    assert rows(db_path, "SELECT order_count, last_order_id FROM customers") == [(0, None)]


async def test_order_in_progress_is_written_before_the_call_ends(repo, db_path):
    call, _ = await scripted_call(repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)
    await call.journal.flush()  # checkpoints are written in the background, without making the caller wait

    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("in_progress", 3200)]
    assert rows(db_path, "SELECT name FROM customers") == [("Leo",)]
    assert rows(db_path, "SELECT ended_at FROM calls") == [(None,)]
    await call.finish()


async def test_finish_twice_gives_the_same_rows(repo, db_path):
    call, _ = await scripted_call(repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES)
    before = snapshot(db_path)

    await call.finish()
    await call.finish("something_else")
    assert snapshot(db_path) == before

    # the write itself, repeated with one record (as a spool replay would), changes nothing the second time
    record = call_snapshot(call.userdata, call.session.history, "something_else")
    await repo.save_call(record)
    once = snapshot(db_path)
    await repo.save_call(record)
    assert snapshot(db_path) == once
    assert {table: len(found) for table, found in once.items()} == {t: len(f) for t, f in before.items()}


async def test_finish_concurrent_with_the_sessions_own_close(repo, db_path):
    call, _ = await scripted_call(repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)

    await asyncio.gather(call.session.aclose(), call.finish(), call.finish())
    await call.finish()

    assert rows(db_path, "SELECT count(*) FROM orders") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM calls WHERE ended_at IS NOT NULL") == [(1,)]
    user_rows = rows(db_path, "SELECT count(*) FROM messages WHERE role = 'user'")
    assert user_rows == [(len(MID_ORDER_LINES),)]
    assert rows(db_path, "SELECT end_reason FROM calls") == [("user_initiated",)]


async def test_session_close_alone_finalizes_the_call(repo, db_path):
    call, _ = await scripted_call(repo, "leo", MID_ORDER_STEPS, MID_ORDER_LINES, finish=False)

    await call.session.aclose()
    assert call.closing is not None
    await call.closing

    assert call.finished
    assert rows(db_path, "SELECT status FROM orders") == [("abandoned",)]
    assert rows(db_path, "SELECT count(*) FROM messages WHERE call_id = ?", (call.call_id,))[0][0] > 0
