"""The call's journal: every order and every word durable the moment it is said."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sqlite3

import psycopg
from workers import place_while_locked_then_wait_to_be_killed, talk_then_wait_to_be_killed

from conftest import rows, scripted_call
from db import open_repository
from db.spool import spool_path
from db.sqlite.connection import CHECKPOINT_IDLE_S
from db.stale import OPEN_CALLS_OF_CALLER_SQL
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS
from memory_agent.scripted_llm import Say, ToolCall

SPAWN = multiprocessing.get_context("spawn")


def kill(child) -> None:
    child.kill()  # SIGKILL: nothing in the child runs after this
    child.join()
    assert child.exitcode == -9


async def test_an_order_announced_as_placed_survives_sigkill_while_the_database_refuses_writes(backend):
    async with backend.open():
        pass
    ordered, locked, placed = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(
        target=place_while_locked_then_wait_to_be_killed,
        args=(backend.target, str(backend.spool_dir), "placed-call", ordered, locked, placed),
    )
    child.start()
    try:
        assert ordered.wait(timeout=60), "the child's call never got its items"
        with backend.refusing():  # an owner's sqlite3 shell, a backup; a server turning clients away
            locked.set()
            heard = placed.get(timeout=60)
            kill(child)
    finally:
        if child.is_alive():
            kill(child)
    assert heard == ([], "Feedback")  # placed: the call went on to feedback, which says so
    if backend.name == "postgres":  # the killed process's heartbeat is as old as a lease run out
        with psycopg.connect(backend.target, autocommit=True) as conn:
            conn.execute("UPDATE worker_hosts SET heartbeat_at = now() - interval '1 hour'")

    async with backend.open() as repo:  # the restart
        await repo.recovered()

    assert backend.rows("SELECT status, total_cents, placed_at IS NOT NULL FROM orders") == [("placed", 3650, 1)]
    assert backend.rows("SELECT menu_item, quantity FROM order_items ORDER BY position") == [
        ("margherita_pizza", 2),
        ("tiramisu", 1),
    ]
    assert backend.rows("SELECT order_count, lifetime_spend_cents FROM customers") == [(1, 3650)]
    [(reason,)] = backend.rows("SELECT end_reason FROM calls")
    assert reason.startswith("abandoned: the process running the call")  # the call itself never ended
    assert not backend.spool_file.exists()


async def test_a_killed_call_keeps_every_completed_turn(backend):
    async with backend.open():
        pass
    lines = [f"caller line {n}" for n in range(1, 8)]
    ready = SPAWN.Event()
    child = SPAWN.Process(
        target=talk_then_wait_to_be_killed, args=(backend.target, str(backend.spool_dir), "talk", lines, ready)
    )
    child.start()
    try:
        assert ready.wait(timeout=60), "the child's call never finished its turns"
    finally:
        kill(child)

    said = [r[0] for r in backend.rows("SELECT content FROM messages WHERE role = 'user' ORDER BY seq")]
    assert said == lines
    replies = backend.rows("SELECT count(*) FROM messages WHERE role = 'assistant'")
    assert replies == [(len(lines) + 1,)]


SURROGATE_STEPS = [
    Say("Welcome \ud800 to Bella Vista!"),
    ToolCall("save_customer_name", {"name": "Jos\udce9"}),
    Say("Hello!"),
]


async def test_lone_surrogates_from_the_caller_and_the_llm_are_stored_as_replacement_characters(any_repo, backend):
    call, _ = await scripted_call(any_repo, "+15550007777", SURROGATE_STEPS, ["I'm Jos\udce9, caf\udce9 please"])

    assert call.finished
    assert backend.rows("SELECT content FROM messages WHERE role IN ('user', 'assistant') ORDER BY seq") == [
        ("Welcome \ufffd to Bella Vista!",),
        ("I'm Jos\ufffd, caf\ufffd please",),
        ("Hello!",),
    ]
    assert backend.rows("SELECT name FROM customers") == [("Jos",)]  # a name keeps printable characters only
    assert backend.rows("SELECT ended_at IS NOT NULL FROM calls") == [(1,)]


async def test_lone_surrogates_survive_the_spool_too(backend):
    async with backend.open(busy_timeout_ms=20) as repo:
        call, _ = await scripted_call(repo, "+15550006666", SURROGATE_STEPS, ["caf\udce9"], finish=False)
        with backend.refusing():
            await call.finish()
            assert backend.spool_file.exists()

    async with backend.open() as repo:
        await repo.recovered()

    said = backend.rows("SELECT content FROM messages WHERE role = 'user'")
    assert said == [("caf\ufffd",)]
    assert not backend.spool_file.exists()


async def test_a_full_disk_under_the_database_loses_nothing_when_the_spool_is_elsewhere(tmp_path):
    db_path, elsewhere = tmp_path / "data" / "memory.db", tmp_path / "spool"
    db_path.parent.mkdir()
    elsewhere.mkdir()
    async with open_repository(db_path, spool_dir=elsewhere) as repo:
        # SQLite's own size limit refuses writes exactly as a full disk does (SQLITE_FULL).
        (pages,) = (await repo.read("PRAGMA page_count", ()))[0]
        await repo.writer.run(lambda db: db.execute(f"PRAGMA max_page_count = {pages}"))
        # A caller who talks at length: their words cannot fit in the room left inside the file.
        lines = [FIRST_CALL_LINES[0] + " and so on" * 2000, *FIRST_CALL_LINES[1:]]
        call, _ = await scripted_call(repo, "+15550005555", FIRST_CALL_STEPS, lines)
    spooled = elsewhere / "memory.db.spool.jsonl"
    assert spooled.exists() and not spool_path(db_path).exists()
    assert oct(spooled.stat().st_mode & 0o777) == "0o600"

    async with open_repository(db_path, spool_dir=elsewhere):  # the disk has room again
        pass

    assert not spooled.exists()
    assert rows(db_path, "SELECT name, order_count, lifetime_spend_cents, last_rating FROM customers") == [
        ("Maria", 1, 3650, 2)
    ]
    assert rows(db_path, "SELECT status FROM orders") == [("placed",)]
    assert rows(db_path, "SELECT comment FROM feedback") == [("the pizza arrived cold",)]
    said = rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY seq")
    assert [r[0] for r in said] == lines


async def test_a_call_forces_two_writes_to_disk_placing_the_order_and_ending(any_repo, backend):
    forced = []
    for steps, lines in [(FIRST_CALL_STEPS, FIRST_CALL_LINES), (RETURN_CALL_STEPS, RETURN_CALL_LINES)]:
        before = any_repo.write_counts["forced"]
        await scripted_call(any_repo, "+15550004444", steps, lines, trust_caller_id=True)
        forced.append(any_repo.write_counts["forced"] - before)

    assert forced == [2, 2]  # a new caller and a returning one: the placed order, then the call's end
    assert any_repo.write_counts["relaxed"] > 0  # the checkpoints on the way
    placed = "SELECT count(*), count(*) FILTER (WHERE status = 'placed') FROM orders"
    assert backend.rows(placed) == [(2, 2)]


async def test_a_checkpoint_with_nothing_new_writes_nothing(any_repo):
    call, _ = await scripted_call(any_repo, "+15550003333", FIRST_CALL_STEPS[:3], FIRST_CALL_LINES[:1], finish=False)
    await call.journal.flush()
    before = any_repo.write_counts.copy()

    for _ in range(3):  # as each agent's on_exit does
        call.journal.checkpoint()
    await call.journal.flush()

    assert any_repo.write_counts == before
    await call.finish()


async def test_the_main_file_keeps_up_with_the_write_ahead_log(repo, db_path, tmp_path):
    await scripted_call(repo, "+15550002222", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    # The policy copies the log into the main file once the writes pause.
    await asyncio.sleep(CHECKPOINT_IDLE_S * 1.2)
    await scripted_call(repo, "+15550002222", RETURN_CALL_STEPS, RETURN_CALL_LINES)
    await asyncio.sleep(0.2)

    copy = tmp_path / "plain-copy.db"
    shutil.copyfile(db_path, copy)  # the main file alone, as a naive backup takes it
    assert rows(copy, "SELECT count(*) FROM orders") >= [(1,)]
    assert rows(copy, "SELECT name FROM customers") == [("Maria",)]


async def test_the_wal_is_emptied_when_the_repository_closes(db_path):
    async with open_repository(db_path) as repo:
        await scripted_call(repo, "+15550001111", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    copy = db_path.with_name("copy.db")
    shutil.copyfile(db_path, copy)
    assert rows(copy, "SELECT count(*) FROM messages") == rows(db_path, "SELECT count(*) FROM messages")


async def test_a_callers_open_calls_are_found_through_the_partial_index(repo, db_path):
    conn = sqlite3.connect(db_path)
    plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + OPEN_CALLS_OF_CALLER_SQL, ("x",)))
    conn.close()
    assert "ix_calls_open_customer" in plan
