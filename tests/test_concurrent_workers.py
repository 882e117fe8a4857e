"""Concurrent workers: many processes finishing calls into one SQLite file lose nothing and raise nothing.

What is asserted holds on a machine of any speed: no errors, and every call, order and line kept.
"""

from __future__ import annotations

import asyncio
import multiprocessing

from workers import ORDER_LINES, ORDER_STEPS, PLACE_STEPS, finish_calls

from conftest import rows
from db import open_repository
from db.spool import spool_path
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.scripted_llm import ScriptedLLM

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 8
CALLS_EACH = 6
CALLERS = ["+15550000001", "+15550000002", "+15550000003"]


async def test_eight_worker_processes_finishing_calls_at_once_lose_nothing(db_path):
    async with open_repository(db_path):
        pass
    start = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=finish_calls, args=(str(db_path), n, CALLS_EACH, CALLERS, start, results))
        for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    reports = [await asyncio.to_thread(results.get, timeout=120) for _ in workers]
    for worker in workers:
        worker.join()

    problems = [problem for _, _, worker_problems in reports for problem in worker_problems]
    assert problems == []  # nothing raised, no error logged
    assert sum(len(waits) for _, waits, _ in reports) == WORKERS * CALLS_EACH
    # Whatever a loaded machine made wait past its budget went to the spool: the next start writes it.
    async with open_repository(db_path) as repo:
        await repo.recovery
    assert not spool_path(db_path).exists()
    total = WORKERS * CALLS_EACH
    assert rows(db_path, "SELECT count(*), count(ended_at) FROM calls") == [(total, total)]
    assert rows(db_path, "SELECT count(*), sum(status = 'placed'), sum(total_cents) FROM orders") == [
        (total, total, total * 3650)
    ]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(total * 2,)]
    assert rows(db_path, "SELECT count(DISTINCT call_id) FROM messages") == [(total,)]
    customers = rows(db_path, "SELECT participant_identity, call_count, order_count FROM customers  ORDER BY 1")
    assert [c[0] for c in customers] == CALLERS
    assert sum(c[1] for c in customers) == total
    assert sum(c[2] for c in customers) == total
    assert rows(db_path, "PRAGMA integrity_check") == [("ok",)]


async def test_two_calls_of_one_caller_at_once_keep_their_own_orders(db_path):
    """Two workers (two connections) serve the same caller at the same time."""
    async with open_repository(db_path) as first_repo, open_repository(db_path) as second_repo:
        placing = ScriptedLLM([*ORDER_STEPS, *PLACE_STEPS])
        first, second = await asyncio.gather(
            start_call(first_repo, Caller.typed("+15551230000"), llm=placing),
            start_call(second_repo, Caller.typed("+15551230000"), llm=ScriptedLLM(ORDER_STEPS)),
        )
        await asyncio.gather(first.greeting, second.greeting)
        for line in ORDER_LINES:
            await asyncio.gather(first.session.run(user_input=line), second.session.run(user_input=line))
        await first.session.run(user_input="Place it")
        await asyncio.gather(first.finish(), second.finish())
    async with open_repository(db_path) as repo:  # writes what a loaded machine spooled, if anything
        await repo.recovery

    assert rows(db_path, "SELECT count(*), sum(call_count) FROM customers") == [(1, 2)]
    assert rows(db_path, "SELECT call_id, status FROM orders ORDER BY call_id") == sorted(
        [(first.call_id, "placed"), (second.call_id, "abandoned")]
    )
    assert rows(db_path, "SELECT count(*) FROM order_items GROUP BY order_id") == [(2,), (2,)]
    assert rows(db_path, "SELECT order_count, lifetime_spend_cents FROM customers") == [(1, 3650)]
