"""Crashes: a killed worker loses nothing written through, and the calls it leaves are closed as abandoned."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sqlite3
import subprocess
import sys

from workers import call_then_wait_to_be_killed

from conftest import rows, scripted_call
from db import open_repository
from db.owner import current_owner, machine_id, process_start
from memory_agent.scripted_llm import Fail, Say, ToolCall

SPAWN = multiprocessing.get_context("spawn")


def kill_mid_call(db_path, call_id: str) -> None:
    """Run a call in a child process up to items added, not placed, then SIGKILL it."""
    ready = SPAWN.Event()
    child = SPAWN.Process(target=call_then_wait_to_be_killed, args=(str(db_path), call_id, ready))
    child.start()
    try:
        assert ready.wait(timeout=60), "the child's call never got its items"
    finally:
        child.kill()  # SIGKILL: nothing in the child runs after this
        child.join()
    assert child.exitcode == -9


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def insert_open_call(
    db_path,
    call_id: str,
    identity: str,
    *,
    host: str | None,
    pid: int | None,
    started: str | None,
    started_at: str = "2026-01-01T12:00:00.000000+00:00",
) -> None:
    """An open call with an in-progress order, as a worker leaves them mid-call."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO customers (participant_identity, created_at, last_seen_at, call_count)"
            " VALUES (?, ?, ?, 1) ON CONFLICT (participant_identity) DO NOTHING",
            (identity, started_at, started_at),
        )
        (customer_id,) = conn.execute("SELECT id FROM customers WHERE participant_identity = ?", (identity,)).fetchone()
        conn.execute(
            "INSERT INTO calls (id, customer_id, started_at, owner_host, owner_pid, owner_started)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, customer_id, started_at, host, pid, started),
        )
        order_id = conn.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, total_cents, created_at,"
            " updated_at) VALUES (?, ?, 'in_progress', 750, 750, ?, ?) RETURNING id",
            (call_id, customer_id, started_at, started_at),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents)"
            " VALUES (?, 1, 'tiramisu', 'Tiramisu', 1, 750)",
            (order_id,),
        )
    conn.close()


async def test_items_written_through_survive_sigkill_mid_call(db_path):
    async with open_repository(db_path):
        pass

    kill_mid_call(db_path, "killed-call")

    assert rows(db_path, "SELECT status, subtotal_cents FROM orders WHERE call_id = 'killed-call'") == [
        ("in_progress", 3650)
    ]
    assert rows(db_path, "SELECT menu_item, quantity FROM order_items ORDER BY position") == [
        ("margherita_pizza", 2),
        ("tiramisu", 1),
    ]


async def test_call_of_a_killed_worker_is_closed_as_abandoned_at_next_start(db_path):
    async with open_repository(db_path):
        pass
    kill_mid_call(db_path, "killed-call")
    assert rows(db_path, "SELECT ended_at FROM calls") == [(None,)]

    async with open_repository(db_path):
        pass

    [(ended_at, reason)] = rows(db_path, "SELECT ended_at, end_reason FROM calls")
    assert ended_at is not None
    assert reason.startswith("abandoned: the process running the call (pid ")
    assert "died" in reason
    assert rows(db_path, "SELECT status FROM orders") == [("abandoned",)]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(2,)]


async def test_call_of_a_dead_process_is_closed_when_its_caller_calls_again(repo, db_path):
    insert_open_call(db_path, "old", "alice", host=machine_id(), pid=dead_pid(), started="1")

    await scripted_call(
        repo,
        "alice",
        [
            Say("Hello!"),
            ToolCall("transfer_to_order_taker"),
            Say("What?"),
            ToolCall("add_to_order", {"item": "tiramisu"}),
            ToolCall("confirm_order"),
            Say("Placed."),
        ],
        ["order", "a tiramisu", "yes"],
    )

    closed = "SELECT id = 'old', end_reason LIKE 'abandoned: the process%' FROM calls ORDER BY started_at"
    assert rows(db_path, closed) == [(1, 1), (0, 0)]
    assert rows(db_path, "SELECT call_id = 'old', status FROM orders ORDER BY id") == [
        (1, "abandoned"),
        (0, "placed"),
    ]
    counts = "SELECT call_count, order_count, lifetime_spend_cents FROM customers"
    assert rows(db_path, counts) == [(2, 1, 750)]


async def test_call_whose_pid_was_reused_by_another_process_is_closed(db_path):
    async with open_repository(db_path):
        pass
    me = current_owner()
    insert_open_call(db_path, "reused", "bob", host=me.host, pid=me.pid, started=f"{me.started}0")

    async with open_repository(db_path):
        pass

    assert rows(db_path, "SELECT end_reason IS NOT NULL FROM calls") == [(1,)]


async def test_calls_of_live_workers_are_left_running(db_path):
    """A worker starting up must not close what the other live workers are in the middle of."""
    async with open_repository(db_path):
        pass
    me = current_owner()
    insert_open_call(db_path, "live-here", "carol", host=me.host, pid=me.pid, started=me.started)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: ASYNC220
    try:
        started = process_start(sleeper.pid)
        insert_open_call(db_path, "live-there", "dave", host=me.host, pid=sleeper.pid, started=started)
        insert_open_call(
            db_path,
            "other-machine",
            "erin",
            host="elsewhere/boot/pid:[1]",
            pid=1,
            started="1",
            started_at="2999-01-01T00:00:00.000000+00:00",
        )

        async with open_repository(db_path) as repo:
            assert await repo.close_stale_calls(identity="carol") == []

        assert rows(db_path, "SELECT count(*) FROM calls WHERE ended_at IS NULL") == [(3,)]
        assert rows(db_path, "SELECT DISTINCT status FROM orders") == [("in_progress",)]
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_call_from_another_machine_is_closed_only_after_its_lease(db_path):
    async with open_repository(db_path):
        pass
    insert_open_call(db_path, "quiet", "frank", host="elsewhere/boot/pid:[1]", pid=1, started="1")
    insert_open_call(db_path, "no-owner", "gina", host=None, pid=None, started=None)

    async with open_repository(db_path):
        pass

    assert rows(db_path, "SELECT id, ended_at, end_reason FROM calls ORDER BY id") == [
        (
            "no-owner",
            "2026-01-01T12:00:00.000000+00:00",
            "abandoned: no activity for 2 hours and its process could not be checked",
        ),
        (
            "quiet",
            "2026-01-01T12:00:00.000000+00:00",
            "abandoned: no activity for 2 hours and its process could not be checked",
        ),
    ]


async def test_call_whose_llm_fails_still_writes_order_feedback_and_transcript(repo, db_path):
    steps = [
        Say("Welcome!"),
        ToolCall("transfer_to_order_taker"),
        Say("What would you like?"),
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("A tiramisu. Place it?"),
        ToolCall("confirm_order"),
        Say("Placed."),
        Say("Rate us 1 to 5?"),
        ToolCall("record_feedback", {"rating": 4, "comment": "quick"}),
        Fail(),
        Fail(),
        Fail(),
        Fail(),
    ]
    call, _ = await scripted_call(repo, "hank", steps, ["order", "a tiramisu", "yes", "bye"], finish=False)
    closed = asyncio.Event()
    call.session.on("close", lambda _event: closed.set())
    for _ in range(4):  # the provider keeps failing; past three unrecoverable errors the session closes
        with contextlib.suppress(Exception):
            await call.session.run(user_input="four, it was quick")
    await asyncio.wait_for(closed.wait(), timeout=30)
    assert call.closing is not None
    await call.closing
    assert rows(db_path, "SELECT end_reason FROM calls") == [("error",)]
    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("placed", 750)]
    assert rows(db_path, "SELECT rating, comment FROM feedback") == [(4, "quick")]
    said = [r[0] for r in rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY seq")]
    assert said[:4] == ["order", "a tiramisu", "yes", "bye"]


async def test_call_closed_during_a_handoff_is_finalized(repo, db_path):
    steps = [
        Say("Welcome! Your name?"),
        ToolCall("save_customer_name", {"name": "Ida"}),  # the order taker takes over
        Say("Hi Ida, what would you like?"),
    ]
    call, _ = await scripted_call(repo, "ida", steps, [], finish=False)

    def close_on_handoff(event) -> None:
        if event.item.type == "agent_handoff" and call.closing is None:
            call.closing = asyncio.create_task(call.finish("participant_disconnected"))

    call.session.on("conversation_item_added", close_on_handoff)
    with contextlib.suppress(Exception):  # the run may be cut short by the close
        await call.session.run(user_input="I'm Ida, I want to order")
    assert call.closing is not None, "no handoff happened"
    await call.closing

    assert call.finished
    assert rows(db_path, "SELECT caller_name, end_reason FROM calls") == [("Ida", "participant_disconnected")]
    roles = [r[0] for r in rows(db_path, "SELECT role FROM messages ORDER BY seq")]
    assert "handoff" in roles and roles.count("user") == 1
