"""A failing database: refused end-of-call writes are spooled and replayed once; slow lookups don't mute."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from workers import ORDER_LINES, ORDER_STEPS, PLACE_STEPS

from conftest import lookup_stalled, open_call, rows
from db import CallSnapshot, Feedback, Message, Order, OrderLine, Repository, open_repository
from db.clock import utcnow_iso
from db.spool import spool_path
from memory_agent import start_call
from memory_agent.call import CallConfig
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS
from memory_agent.identity import Caller
from memory_agent.journal import FINALIZE_WITHIN_S, Journal
from memory_agent.scripted_llm import Say, ScriptedLLM

FAST_GIVE_UP_MS = 20  # the busy bound, shortened so a held lock counts as "past the bound" quickly


@contextlib.contextmanager
def write_lock_held(db_path: Path) -> Iterator[None]:
    """Another connection (a backup tool, a stuck process) holds the write lock."""
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextlib.contextmanager
def read_only_file(db_path: Path) -> Iterator[None]:
    """The database file cannot be written (chmod for a user; root ignores modes, so chattr +i)."""
    if os.geteuid() != 0:
        db_path.chmod(0o444)
        restore = ["chmod", "644", str(db_path)]
    else:
        done = subprocess.run(["chattr", "+i", str(db_path)], capture_output=True)
        if done.returncode != 0 or shutil.which("chattr") is None:
            pytest.skip("running as root where chattr +i is not permitted: cannot make a file read-only")
        restore = ["chattr", "-i", str(db_path)]
    try:
        yield
    finally:
        subprocess.run(restore, check=True)


def a_record(call_id: str = "c1", *, messages: int = 3, text: str = "hello") -> CallSnapshot:
    return CallSnapshot(
        call_id=call_id,
        caller_name="Maria",
        order=Order(
            status="placed",
            items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=2, unit_price_cents=750)],
        ),
        messages=[Message(role="user", content=text, created_at=utcnow_iso()) for _ in range(messages)],
        ended_at=utcnow_iso(),
        end_reason="participant_disconnected",
    )


async def finalize_or_spool(repo: Repository, record: CallSnapshot, *, within_s: float = FINALIZE_WITHIN_S) -> bool:
    """Close a call whose final record is ``record`` through its journal: True if written, False if spooled."""
    journal = Journal(repo, call_id=record.call_id, caller=record.identity, budget_s=0.3)
    journal.attach(lambda end_reason: record)
    return await journal.close(record.end_reason or "finished", within_s=within_s)


def spooled_ids(db_path: Path) -> list[str]:
    path = spool_path(db_path)
    if not path.exists():
        return []
    return [CallSnapshot.model_validate_json(line).call_id for line in path.read_text().splitlines()]


async def test_call_goes_on_and_is_spooled_when_the_database_stays_locked(db_path, caplog):
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        llm = ScriptedLLM([*ORDER_STEPS, *PLACE_STEPS])
        call = await start_call(repo, Caller.typed("+15557654321"), llm=llm)
        await call.greeting
        for line in ORDER_LINES:
            await call.session.run(user_input=line)
        await call.journal.flush()
        with write_lock_held(db_path):
            result = await call.session.run(user_input="Yes, place it")
            await call.finish()  # does not raise: the caller notices nothing

        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert [(o.name, o.is_error) for o in outputs] == [("confirm_order", False)]
        assert "Their order was just placed" in call.session.current_agent.instructions
    # the placed order (spooled before the caller heard "placed"), the turn that announced it, the final record
    assert spooled_ids(db_path) == [call.call_id] * 3
    # the final record is only in the spool (a turn's write given up on may have landed meanwhile)
    assert rows(db_path, "SELECT ended_at FROM calls") == [(None,)]
    assert "spooled" in caplog.text
    assert "+15557654321" not in caplog.text

    async with open_repository(db_path):
        pass

    assert spooled_ids(db_path) == []
    assert not spool_path(db_path).exists()
    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("placed", 3650)]
    assert rows(db_path, "SELECT end_reason FROM calls") == [("user_initiated",)]
    assert rows(db_path, "SELECT order_count, lifetime_spend_cents FROM customers") == [(1, 3650)]
    assert rows(db_path, "SELECT count(*) FROM messages WHERE role = 'user'") == [(3,)]


@pytest.mark.parametrize("failure", ["locked past the retry bound", "read-only file", "disk full"])
async def test_refused_end_of_call_write_is_spooled_and_replayed_once(db_path, failure):
    async with open_repository(db_path):
        pass
    record = a_record(messages=200, text="x" * 500)  # about 100 KB of transcript

    async def finalize() -> bool:
        async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
            if failure == "disk full":
                # SQLite's own size limit refuses the write exactly as a full disk does (SQLITE_FULL).
                (pages,) = (await repo.read("PRAGMA page_count", ()))[0]
                await repo.writer.run(lambda db: db.execute(f"PRAGMA max_page_count = {pages}"))
            return await finalize_or_spool(repo, record)

    if failure == "locked past the retry bound":
        with write_lock_held(db_path):
            written = await finalize()
    elif failure == "read-only file":
        with read_only_file(db_path):
            written = await finalize()
    else:
        written = await finalize()

    assert written is False
    assert spooled_ids(db_path) == ["c1"]
    assert rows(db_path, "SELECT count(*) FROM calls") == [(0,)]

    async with open_repository(db_path):
        pass
    async with open_repository(db_path):
        pass

    assert spooled_ids(db_path) == []
    assert rows(db_path, "SELECT id, end_reason FROM calls") == [("c1", "participant_disconnected")]
    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("placed", 1500)]
    assert rows(db_path, "SELECT count(*) FROM messages") == [(200,)]


async def test_replay_interrupted_before_the_spool_is_cleared_writes_nothing_twice(db_path):
    """A crash after the database committed, before the spool forgot the call: replayed again, harmlessly."""
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        await open_call(repo, call_id="c1", identity="+15551112222", started_at=utcnow_iso())
        record = a_record().model_copy(update={"identity": "+15551112222"})
        with write_lock_held(db_path):
            assert await finalize_or_spool(repo, record) is False
    saved = spool_path(db_path).read_bytes()

    async with open_repository(db_path):
        pass
    spool_path(db_path).write_bytes(saved)  # as if the process died before removing it
    async with open_repository(db_path):
        pass

    assert not spool_path(db_path).exists()
    counts = "SELECT call_count, order_count, lifetime_spend_cents FROM customers"
    assert rows(db_path, counts) == [(1, 1, 1500)]
    assert rows(db_path, "SELECT count(*) FROM orders") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM messages") == [(3,)]


async def test_spool_still_refused_at_start_is_kept_and_start_goes_on(db_path, caplog):
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        with write_lock_held(db_path):
            assert await finalize_or_spool(repo, a_record("c1")) is False
            assert await finalize_or_spool(repo, a_record("c2")) is False

    with write_lock_held(db_path):
        async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS):
            pass

    assert spooled_ids(db_path) == ["c1", "c2"]
    assert "still refused" in caplog.text
    async with open_repository(db_path):
        pass
    assert rows(db_path, "SELECT id FROM calls ORDER BY id") == [("c1",), ("c2",)]


async def test_torn_spool_line_is_set_aside_and_the_others_replayed(db_path, caplog):
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        with write_lock_held(db_path):
            await finalize_or_spool(repo, a_record("c1"))
            with spool_path(db_path).open("ab") as spool:
                spool.write(torn := a_record("torn").model_dump_json().encode()[:40])  # a crash mid-append
            await finalize_or_spool(repo, a_record("c2"))

    async with open_repository(db_path):
        pass

    assert rows(db_path, "SELECT id FROM calls ORDER BY id") == [("c1",), ("c2",)]
    assert not spool_path(db_path).exists()
    rejected = db_path.with_name(db_path.name + ".spool.rejected.jsonl").read_text()
    assert rejected == torn.decode() + "\n"
    assert "unreadable spool line" in caplog.text


async def test_spooled_call_of_a_dead_process_is_replayed_not_abandoned(db_path):
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        await open_call(repo, call_id="c1", identity="+15553334444", started_at=utcnow_iso())
        with write_lock_held(db_path):
            assert await finalize_or_spool(repo, a_record("c1")) is False
    with sqlite3.connect(db_path) as conn:  # the process that ran it is gone
        conn.execute("UPDATE calls SET owner_pid = 0, owner_started = 'gone'")
    conn.close()

    async with open_repository(db_path):
        pass

    assert rows(db_path, "SELECT end_reason FROM calls") == [("participant_disconnected",)]
    assert rows(db_path, "SELECT status FROM orders") == [("placed",)]


# -- the caller lookup --------------------------------------------------------------


async def test_lookup_back_after_the_greeting_recognizes_the_caller_when_they_say_their_name(db_path):
    async with open_repository(db_path) as repo:
        first = await start_call(repo, Caller.typed("alice"), llm=ScriptedLLM(FIRST_CALL_STEPS))
        await first.greeting
        for line in FIRST_CALL_LINES:
            await first.session.run(user_input=line)
        await first.finish()

        with lookup_stalled() as (release, authorizer):
            await repo.reader.set_authorizer(authorizer)  # the stall sits in SQLite itself
            llm = ScriptedLLM(RETURN_CALL_STEPS)
            call = await start_call(repo, Caller.typed("alice"), CallConfig(recall_budget_s=0.05), llm=llm)
            await call.greeting
            assert call.userdata.memory is None  # greeted without waiting for the lookup
            release.set()
        await repo.reader.set_authorizer(None)
        await call.session.run(user_input=RETURN_CALL_LINES[0])  # "Hi, it's Maria Rossi"
        await call.finish()

    assert call.greeting.events, "the agent did not greet"
    assert '"Maria"' not in llm.requests[0].instructions
    # named, the caller is the profile we remember, and the order taker is told so
    assert call.userdata.memory is not None and call.userdata.identity == "alice"
    assert "A returning caller" in llm.requests[-1].instructions
    assert rows(db_path, "SELECT count(*), count(ended_at), count(DISTINCT customer_id) FROM calls") == [(2, 2, 1)]


async def test_failing_caller_lookup_greets_without_memory_and_logs_it(db_path, caplog):
    async with open_repository(db_path) as repo:
        await open_call(repo, call_id="c0", identity="alice", started_at=utcnow_iso())

        def refuse(action: int, table: str | None, *_: object) -> int:
            return sqlite3.SQLITE_DENY if table == "order_items" else sqlite3.SQLITE_OK

        await repo.reader.set_authorizer(refuse)  # SQLite itself refuses the lookup
        llm = ScriptedLLM(RETURN_CALL_STEPS)
        call = await start_call(repo, Caller.typed("alice"), llm=llm)
        await call.greeting
        await repo.reader.set_authorizer(None)
        await call.finish()

    assert call.greeting.events, "the agent did not greet"
    assert "What we remember" not in llm.requests[0].instructions
    assert "caller lookup for alice failed" in caplog.text
    assert "going on without memory" in caplog.text


async def test_call_whose_start_could_not_be_recorded_is_served_and_linked_to_its_caller(db_path, caplog):
    async with open_repository(db_path) as repo:
        first = ScriptedLLM(FIRST_CALL_STEPS)
        call = await start_call(repo, Caller.typed("+15550001111"), llm=first)
        await call.greeting
        for line in FIRST_CALL_LINES:
            await call.session.run(user_input=line)
        await call.finish()

    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        with write_lock_held(db_path):
            returning = ScriptedLLM(RETURN_CALL_STEPS)
            call = await start_call(repo, Caller.typed("+15550001111"), CallConfig(trust_caller_id=True), llm=returning)
            await call.greeting
            await call.journal.flush()
        assert f"checkpoint of call {call.call_id} spooled" in caplog.text
        results = [await call.session.run(user_input=line) for line in RETURN_CALL_LINES]
        in_progress = rows(db_path, "SELECT status FROM orders WHERE call_id = ?", (call.call_id,))
        await call.finish()

    outputs = [e.item for r in results for e in r.events if e.type == "function_call_output"]
    assert [o.name for o in outputs if o.is_error] == ["add_to_order"]  # the pesto pizza: she is allergic
    assert in_progress == [("placed",)]  # written through although the call's start was not recorded
    assert rows(db_path, "SELECT count(*), sum(customer_id IS NULL) FROM calls") == [(2, 0)]
    assert rows(db_path, "SELECT customer_id, status, total_cents FROM orders ORDER BY id") == [
        (1, "placed", 3650),
        (1, "placed", 3650),
    ]
    assert rows(db_path, "SELECT call_count, order_count FROM customers") == [(2, 2)]


async def test_a_call_replayed_late_does_not_replace_the_callers_newer_last_order(db_path):
    async with open_repository(db_path, busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        older = ScriptedLLM(ORDER_STEPS)
        call = await start_call(repo, Caller.typed("+15552223333"), CallConfig(trust_caller_id=True), llm=older)
        await call.greeting
        for line in ORDER_LINES:
            await call.session.run(user_input=line)  # written through: in progress
        call.userdata.order.placed = True  # placed as the database stops taking writes
        with write_lock_held(db_path):
            await call.finish()
        assert set(spooled_ids(db_path)) == {call.call_id}

        newer = await start_call(
            repo, Caller.typed("+15552223333"), CallConfig(trust_caller_id=True), llm=ScriptedLLM(FIRST_CALL_STEPS)
        )
        await newer.greeting
        for line in FIRST_CALL_LINES:
            await newer.session.run(user_input=line)
        await newer.finish()

    async with open_repository(db_path):  # replays the older call
        pass

    assert spooled_ids(db_path) == []
    newest = rows(db_path, "SELECT id FROM orders WHERE call_id = ?", (newer.call_id,))
    assert rows(db_path, "SELECT order_count, last_order_id FROM customers") == [(2, newest[0][0])]


async def test_a_call_replayed_late_keeps_its_own_times_and_not_the_callers_newer_details(repo, db_path):
    old = CallSnapshot(
        call_id="old",
        identity="+15554445555",
        started_at="2026-01-02T18:00:00.000000+00:00",
        caller_name="Bob",
        order=Order(
            status="placed",
            items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)],
        ),
        feedback=Feedback(rating=1, comment="cold"),
        ended_at="2026-01-02T18:05:00.000000+00:00",
        end_reason="participant_disconnected",
    )
    newer = old.model_copy(
        update={
            "call_id": "new",
            "started_at": "2026-01-09T18:00:00.000000+00:00",
            "ended_at": "2026-01-09T18:05:00.000000+00:00",
            "caller_name": "Robert",
            "feedback": Feedback(rating=5, comment="great"),
        }
    )
    await repo.save_call(newer)
    await repo.save_call(old)  # the older call, replayed from the spool a week late

    assert rows(db_path, "SELECT name, last_rating, order_count, call_count FROM customers") == [("Robert", 5, 2, 2)]
    assert rows(db_path, "SELECT call_id, created_at, placed_at FROM orders ORDER BY created_at") == [
        ("old", "2026-01-02T18:00:00.000000+00:00", "2026-01-02T18:05:00.000000+00:00"),
        ("new", "2026-01-09T18:00:00.000000+00:00", "2026-01-09T18:05:00.000000+00:00"),
    ]
    assert rows(db_path, "SELECT call_id, created_at FROM feedback ORDER BY call_id") == [
        ("new", "2026-01-09T18:05:00.000000+00:00"),
        ("old", "2026-01-02T18:05:00.000000+00:00"),
    ]
    memory = await repo.recall("+15554445555")
    assert memory is not None and memory.last_order_at == "2026-01-09T18:00:00.000000+00:00"


async def test_a_busy_database_at_call_start_does_not_hold_back_the_greeting(db_path, caplog):
    async with open_repository(db_path) as repo:  # the full busy timeout: seconds of retries
        llm = ScriptedLLM([Say("Welcome to Bella Vista!")])
        with write_lock_held(db_path):
            call = await start_call(repo, Caller.typed("+15556667777"), CallConfig(recall_budget_s=0.05), llm=llm)
            await call.greeting
            # greeted while the database was still locked
            assert len(llm.requests) == 1
            assert rows(db_path, "SELECT count(*) FROM calls") == [(0,)]
        await call.finish()

    assert rows(
        db_path,
        "SELECT c.participant_identity, c.call_count FROM calls JOIN customers AS c ON c.id = calls.customer_id",
    ) == [("+15556667777", 1)]


async def test_a_busy_database_mid_call_never_makes_the_caller_wait(db_path, caplog):
    async with open_repository(db_path) as repo:  # the full busy timeout: seconds of retries per write
        llm = ScriptedLLM([*ORDER_STEPS, *PLACE_STEPS])
        call = await start_call(repo, Caller.typed("+15558889999"), CallConfig(recall_budget_s=0.05), llm=llm)
        await call.greeting
        with write_lock_held(db_path):
            results = [await call.session.run(user_input=line) for line in [*ORDER_LINES, "Yes, place it"]]
            # every turn answered while the database was still locked
            assert rows(db_path, "SELECT count(*) FROM orders") == [(0,)]
        await call.finish()

    outputs = [e.item for r in results for e in r.events if e.type == "function_call_output"]
    assert [(o.name, o.is_error) for o in outputs] == [
        ("transfer_to_order_taker", False),
        ("add_to_order", False),
        ("add_to_order", False),
        ("confirm_order", False),
    ]
    assert "the order was spooled" in caplog.text
    assert rows(db_path, "SELECT status, total_cents FROM orders") == [("placed", 3650)]
    assert rows(db_path, "SELECT order_count FROM customers") == [(1,)]


async def test_a_finalize_that_cannot_finish_in_time_is_spooled_and_written_once(db_path):
    async with open_repository(db_path) as repo:  # the full busy timeout: longer than the deadline
        await open_call(repo, call_id="c1", identity="+15551212121", started_at=utcnow_iso())
        record = a_record().model_copy(update={"identity": "+15551212121"})
        with write_lock_held(db_path):
            assert await finalize_or_spool(repo, record, within_s=0.2) is False
        assert spooled_ids(db_path) == ["c1"]
    # the abandoned write may land once the lock is free; the replay must not write anything twice
    async with open_repository(db_path):
        pass

    assert spooled_ids(db_path) == []
    assert rows(db_path, "SELECT count(*) FROM orders") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM messages") == [(3,)]
    assert rows(db_path, "SELECT order_count, lifetime_spend_cents FROM customers") == [(1, 1500)]
