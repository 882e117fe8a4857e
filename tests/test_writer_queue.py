"""The writer's queue: a placed order goes ahead of the turns waiting for the database, and snapshots
waiting together share one transaction and one commit, each undone alone if it fails."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import pytest

from conftest import rows
from db import CallSnapshot, Message, Order, OrderLine, Repository
from db.clock import utcnow_iso

TURNS = 20
LINE = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)


def turn(call_id: str) -> CallSnapshot:
    said = [Message(role="user", content=f"a line of {call_id}", created_at=utcnow_iso())]
    return CallSnapshot(call_id=call_id, identity=f"+1555000{call_id}", started_at=utcnow_iso(), messages=said)


def placed(call_id: str) -> CallSnapshot:
    return turn(call_id).model_copy(update={"order": Order(status="placed", items=[LINE])})


@asynccontextmanager
async def writer_busy(repo: Repository) -> AsyncIterator[list[str]]:
    """The writer's thread held in a transaction until the block ends; yields the order writes end in."""
    started, release = threading.Event(), threading.Event()
    ended: list[str] = []

    def hold(db: sqlite3.Connection) -> None:
        started.set()
        release.wait()

    holding = asyncio.ensure_future(repo.writer.run(hold))
    holding.add_done_callback(lambda _: ended.append("held"))
    await asyncio.to_thread(started.wait)
    try:
        yield ended
    finally:
        release.set()
        await holding


def tracked(ended: list[str], name: str, write: Awaitable[object]) -> asyncio.Future[object]:
    task = asyncio.ensure_future(write)
    task.add_done_callback(lambda _: ended.append(name))
    return task


async def queued(repo: Repository, count: int) -> None:
    """Let the tasks just created take their first step, which puts each write in the queue."""
    await asyncio.sleep(0)
    assert repo.writer.waiting == count


def ended_call(call_id: str) -> CallSnapshot:
    return turn(call_id).model_copy(update={"ended_at": utcnow_iso(), "end_reason": "caller_hung_up"})


async def test_a_placed_order_is_committed_before_the_writes_queued_ahead_of_it(repo, db_path):
    async with writer_busy(repo) as ended:
        turns = [tracked(ended, f"turn {n}", repo.save_call(turn(f"t{n}"))) for n in range(TURNS)]
        closing = tracked(ended, "ended", repo.save_call(ended_call("e"), forced=True))
        placing = tracked(ended, "placed", repo.save_call(placed("p"), forced=True))
        await queued(repo, TURNS + 2)
    await asyncio.gather(*turns, closing, placing)

    # the placement first, then the turns (each within its budget, or spooled), then a call's final record
    assert ended == ["held", "placed", *(f"turn {n}" for n in range(TURNS)), "ended"]
    assert rows(db_path, "SELECT call_id, status FROM orders") == [("p", "placed")]
    assert rows(db_path, "SELECT count(*) FROM messages") == [(TURNS + 2,)]


async def test_snapshots_waiting_together_share_one_commit_and_all_are_written(repo, db_path):
    before = repo.write_counts.copy()
    async with writer_busy(repo) as ended:
        turns = [tracked(ended, f"turn {n}", repo.save_call(turn(f"t{n}"))) for n in range(TURNS)]
        await queued(repo, TURNS)
    await asyncio.gather(*turns)

    assert repo.write_counts["relaxed"] - before["relaxed"] == 2  # the held one, then every turn in one
    assert repo.write_counts["grouped"] - before["grouped"] == TURNS - 1
    assert rows(db_path, "SELECT count(*), count(DISTINCT call_id) FROM messages") == [(TURNS, TURNS)]
    assert rows(db_path, "SELECT count(*) FROM calls") == [(TURNS,)]


async def test_a_write_that_fails_in_a_shared_transaction_is_undone_alone(repo, db_path):
    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO calls (id, started_at) VALUES ('half', ?)", (utcnow_iso(),))
        raise ValueError("a bad row")

    async with writer_busy(repo):
        first = asyncio.ensure_future(repo.save_call(turn("before")))
        failing = asyncio.ensure_future(repo.writer.run(half_then_fail, group=True))
        last = asyncio.ensure_future(repo.save_call(turn("after")))
        await queued(repo, 3)
    await asyncio.gather(first, last)
    with pytest.raises(ValueError, match="a bad row"):
        await failing

    assert rows(db_path, "SELECT id FROM calls ORDER BY id") == [("after",), ("before",)]
    assert repo.write_counts["grouped"] == 1
