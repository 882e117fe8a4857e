"""Many calls at once: with the database locked and a spool to replay, every call goes on and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_failing_database import FAST_GIVE_UP_MS, spooled_ids, write_lock_held
from workers import (
    place_orders,
    place_orders_while_locked,
    placed_order,
    spin,
    talk_while_locked_then_wait_to_be_killed,
)

from conftest import rows
from db import CallSnapshot, open_repository
from db.clock import utcnow_iso
from db.spool import append, spool_path
from memory_agent import start_call
from memory_agent.call import CallConfig
from memory_agent.identity import Caller
from memory_agent.scripted_llm import Say, ScriptedLLM, ToolCall

SPAWN = multiprocessing.get_context("spawn")
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
PLACEMENTS = 50
PROCESSES = 4
# Bounds of the waits below: generous, so a loaded machine passes; reaching one is the failure.
PATIENCE_S = 120
WRITES_AGAIN_WITHIN_S = 10


def spool_left_from_before(db_path: Path) -> None:
    """A call spooled by an earlier run, for the replay at open to write."""
    append(spool_path(db_path), placed_order("from-before"))


def count_orders(db_path: Path) -> int:
    return int(rows(db_path, "SELECT count(*) FROM orders")[0][0])


class HeldLock:
    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


@contextlib.contextmanager
def write_lock_taken(db_path: Path) -> Iterator[HeldLock]:
    """Another connection holds the write lock until ``release()`` or the block's end."""
    lock = HeldLock(db_path)
    try:
        yield lock
    finally:
        lock.release()
        lock.conn.close()


@contextlib.contextmanager
def default_executor_filled() -> Iterator[None]:
    """Every thread of the event loop's default executor busy until the block ends."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=2)
    loop.set_default_executor(executor)
    release = threading.Event()
    for _ in range(2):
        executor.submit(release.wait)
    try:
        yield
    finally:
        release.set()


async def until(check: Callable[[], bool], *, within_s: float) -> None:
    """Poll ``check()`` until it holds; fail if it does not within ``within_s``."""
    async with asyncio.timeout(within_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


async def test_placements_go_on_while_the_spool_replays_and_the_database_is_locked(db_path):
    async with open_repository(db_path):
        pass
    spool_left_from_before(db_path)

    with write_lock_taken(db_path) as lock:
        async with open_repository(db_path) as repo:  # its replay waits for the locked database
            with default_executor_filled():
                async with asyncio.timeout(PATIENCE_S):
                    spooled = await place_orders(repo, [f"o{n}" for n in range(PLACEMENTS)])
            assert spooled == PLACEMENTS  # each within the budget, into the spool
            assert rows(db_path, "SELECT count(*) FROM orders") == [(0,)]
            lock.release()
            # the spool's drainer writes every order, the one from before included
            await until(lambda: count_orders(db_path) == PLACEMENTS + 1, within_s=PATIENCE_S)

    assert rows(db_path, "SELECT count(DISTINCT call_id), sum(status = 'placed') FROM orders") == [
        (PLACEMENTS + 1, PLACEMENTS + 1)
    ]


async def test_placements_in_several_processes_complete_once_the_lock_is_released(db_path):
    async with open_repository(db_path):
        pass
    spool_left_from_before(db_path)
    released = SPAWN.Event()
    results = SPAWN.Queue()

    with write_lock_held(db_path):
        workers = [
            SPAWN.Process(target=place_orders_while_locked, args=(str(db_path), n, PLACEMENTS, released, results))
            for n in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        placed = [await asyncio.to_thread(results.get, timeout=PATIENCE_S) for _ in workers]
    released.set()
    written = [await asyncio.to_thread(results.get, timeout=PATIENCE_S) for _ in workers]
    for worker in workers:
        worker.join(timeout=PATIENCE_S)

    assert sorted(placed) == [("placed", n, PLACEMENTS) for n in range(PROCESSES)]
    assert sorted(written) == [("written", n, PLACEMENTS) for n in range(PROCESSES)]
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert rows(db_path, "SELECT count(DISTINCT call_id) FROM orders WHERE status = 'placed'") == [
        (PROCESSES * PLACEMENTS + 1,)
    ]


async def test_an_order_whose_write_failed_is_in_the_database_soon_after_it_takes_writes_again(db_path):
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        with write_lock_held(db_path):
            assert await place_orders(repo, ["refused"]) == 1  # the write failed: database is locked
            assert spooled_ids(db_path) == ["refused"]
        # no restart: the drainer writes it once the database takes writes again
        await until(lambda: count_orders(db_path) == 1, within_s=WRITES_AGAIN_WITHIN_S)

    assert rows(db_path, "SELECT call_id, status, total_cents FROM orders") == [("refused", "placed", 750)]
    assert spooled_ids(db_path) == []


async def test_completed_turns_survive_sigkill_while_another_connection_holds_the_write_lock(db_path):
    async with open_repository(db_path):
        pass
    lines = ["Hello there", "I have a question", "What time do you close?"]
    ready = SPAWN.Event()

    with write_lock_held(db_path):
        child = SPAWN.Process(target=talk_while_locked_then_wait_to_be_killed, args=(str(db_path), "c1", lines, ready))
        child.start()
        try:
            assert await asyncio.to_thread(ready.wait, PATIENCE_S), "the child's turns never completed"
        finally:
            child.kill()  # SIGKILL: nothing in the child runs after this
            child.join()
        assert rows(db_path, "SELECT count(*) FROM messages") == [(0,)]  # nothing reached the database
    assert child.exitcode == -9

    async with open_repository(db_path) as repo:
        await repo.recovered()

    said = rows(db_path, "SELECT role, content FROM messages WHERE call_id = 'c1' ORDER BY seq")
    assert [content for role, content in said if role == "user"] == lines
    assert [content for role, content in said if role == "assistant"] == [
        "Welcome to Bella Vista!",
        *(f"Noted: {line}" for line in lines),
    ]


@contextlib.contextmanager
def cpu_saturated() -> Iterator[None]:
    """A busy loop on every core until the block ends."""
    stop = SPAWN.Event()
    spinners = [SPAWN.Process(target=spin, args=(stop,)) for _ in range(os.cpu_count() or 2)]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join()


async def test_returning_callers_arriving_at_once_on_a_busy_machine_are_all_recognized(db_path):
    callers = [(f"caller-{n}", f"Guest {n}") for n in range(200)]
    async with open_repository(db_path) as repo:
        for key, name in callers:
            await repo.save_call(
                CallSnapshot(call_id=f"before-{key}", identity=key, caller_name=name, started_at=utcnow_iso())
            )

        async def call(key: str, name: str) -> tuple[str | None, bool, str]:
            steps = [Say("Welcome to Bella Vista!"), ToolCall("save_customer_name", {"name": name}), Say("Hello!")]
            llm = ScriptedLLM(steps)
            # the lookup may be slow here: what needs it waits up to a minute, the greeting does not
            made = await start_call(repo, Caller.typed(key), CallConfig(memory_wait_s=60), llm=llm)
            assert made.greeting is not None
            await made.greeting
            await made.session.run(user_input=f"Hi, it's {name}")
            await made.finish()
            memory = made.userdata.memory
            return made.userdata.identity, memory is not None and memory.name == name, llm.requests[-1].instructions

        with cpu_saturated():
            async with asyncio.timeout(PATIENCE_S * 3):
                results = await asyncio.gather(*(call(key, name) for key, name in callers))

    assert [identity for identity, _, _ in results] == [key for key, _ in callers]
    assert all(recognized for _, recognized, _ in results)
    assert all("A returning caller" in told for _, _, told in results)
    assert rows(db_path, "SELECT count(*) FROM customers") == [(len(callers),)]


def test_calls_at_a_real_models_pace_flush_the_disk_at_most_four_times_each(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_fsync", SCRIPTS / "bench_fsync.py")
    assert spec is not None and spec.loader is not None
    bench_fsync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_fsync)

    traced = bench_fsync.traced_fsyncs(tmp_path, paced_calls=5)  # strace counts them, in a process of its own

    assert traced is not None, "strace could not trace the calls"
    assert traced["calls"]["paced"]["total"] <= 4 * 5
