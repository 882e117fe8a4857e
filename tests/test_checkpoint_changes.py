"""A checkpoint carries only what changed: a turn spooled late in a call is as small as one spooled early,
and the spool's replay joins a call's lines up into the whole call, on either backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
from test_failing_database import FAST_GIVE_UP_MS, write_lock_held
from test_writer_queue import writer_busy

from conftest import Backend, rows
from db import CallSnapshot, Message, Order, OrderLine
from db.spool import spool_path
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.journal import Journal
from memory_agent.scripted_llm import Say, ScriptedLLM

NUMBER = "+15550003000"
STARTED = "2026-11-01T18:00:00.000000+00:00"
LINE = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)


def said(*texts: str) -> list[Message]:
    return [Message(role="user", content=text, created_at=STARTED) for text in texts]


def part(first_seq: int, *texts: str, **parts: object) -> CallSnapshot:
    """A line of the spool holding the call's transcript from ``first_seq`` on, and ``parts``."""
    return CallSnapshot(
        call_id="c1", identity=NUMBER, started_at=STARTED, first_seq=first_seq, messages=said(*texts), **parts
    )


async def transcript(repo) -> list[str]:
    return [row[0] for row in await repo.read("SELECT content FROM messages WHERE call_id = 'c1' ORDER BY seq", ())]


@contextlib.contextmanager
def writes_held(backend: Backend) -> Iterator[None]:
    """Another connection holds the database's write lock (SQLite's; on PostgreSQL, the calls table's, which
    every write of a call takes): writes wait, reads go on."""
    if backend.name == "sqlite":
        with write_lock_held(Path(backend.target)):
            yield
        return
    with psycopg.connect(backend.target) as other, other.transaction():
        other.execute("LOCK TABLE calls IN EXCLUSIVE MODE")
        yield


async def test_each_spooled_turn_holds_only_that_turn_and_the_replay_writes_the_whole_call(backend):
    lines = [f"caller line {n}" for n in range(1, 6)]
    async with backend.open(busy_timeout_ms=FAST_GIVE_UP_MS) as repo:
        steps = [Say("Welcome to Bella Vista!"), *(Say(f"Noted: {line}") for line in lines)]
        call = await start_call(repo, Caller.typed("+15550007777"), llm=ScriptedLLM(steps), call_id="long")
        assert call.greeting is not None
        await call.greeting
        await call.journal.flush()  # the greeting is in the database
        with writes_held(backend):
            for line in lines:
                await call.session.run(user_input=line)
                await call.journal.saved()  # refused by the database: in the spool
            spooled = [CallSnapshot.model_validate_json(raw) for raw in backend.spool_file.read_bytes().splitlines()]
        await repo.replay_spool()

        # one line per turn, each with the caller's line and the answer, whatever came before
        # (the handoff to the Greeter and its greeting: 2 rows)
        assert [(snap.first_seq, [m.content for m in snap.messages]) for snap in spooled] == [
            (2 * n + 1, [line, f"Noted: {line}"]) for n, line in enumerate(lines, start=1)
        ]
        assert backend.rows("SELECT role, content FROM messages WHERE call_id = 'long' ORDER BY seq") == [
            ("handoff", "start -> greeter"),
            ("assistant", "Welcome to Bella Vista!"),
            *(row for line in lines for row in (("user", line), ("assistant", f"Noted: {line}"))),
        ]
        await call.finish("caller_hung_up")
    assert not backend.spool_file.exists()


async def test_a_calls_lines_are_joined_in_their_order_the_later_part_winning(any_repo):
    await any_repo.spool(part(1, "one", "two", caller_name="Maria"))
    await any_repo.spool(part(3, "three", order=Order(status="in_progress", items=[LINE])))
    await any_repo.spool(part(2, "two, said again", "three", "four", caller_name="Marie"))

    result = await any_repo.replay_spool()  # (or the drainer, woken by the spooling, before it)

    assert result.kept == 0
    assert await transcript(any_repo) == ["one", "two, said again", "three", "four"]
    assert [tuple(r) for r in await any_repo.read("SELECT caller_name FROM calls", ())] == [("Marie",)]
    assert [tuple(r) for r in await any_repo.read("SELECT status, total_cents FROM orders", ())] == [
        ("in_progress", 750)
    ]


async def test_lines_whose_transcripts_do_not_meet_are_written_one_after_the_other(any_repo):
    # The database took the lines between (a checkpoint that reached it in time).
    await any_repo.save_call(part(1, "one", "two", "three"))
    await any_repo.spool(part(2, "two, said again"))
    await any_repo.spool(part(4, "four", order=Order(status="in_progress", items=[LINE])))

    result = await any_repo.replay_spool()  # (or the drainer, woken by the spooling, before it)

    assert result.kept == 0
    assert await transcript(any_repo) == ["one", "two, said again", "three", "four"]
    assert [tuple(r) for r in await any_repo.read("SELECT total_cents FROM orders", ())] == [(750,)]
    assert not any_repo.spool_file.exists() or any_repo.spool_file.read_text() == ""


async def test_the_lines_of_a_call_whose_caller_was_erased_since_are_all_dropped(any_repo):
    await any_repo.save_call(part(1, "one"))
    await any_repo.forget(NUMBER)
    await any_repo.spool(part(2, "two"))
    await any_repo.spool(part(3, "three", caller_name="Maria"))

    result = await any_repo.replay_spool()  # (or the drainer, woken by the spooling, before it)

    assert result.kept == 0
    assert [tuple(r) for r in await any_repo.read("SELECT count(*) FROM messages", ())] == [(0,)]
    assert [tuple(r) for r in await any_repo.read("SELECT count(*) FROM calls", ())] == [(0,)]
    assert not any_repo.spool_file.exists() or any_repo.spool_file.read_text() == ""


async def test_turns_queued_behind_a_busy_writer_cost_two_writes_not_one_each(repo, db_path):
    lines: list[str] = []
    journal = Journal(repo, call_id="c1", caller=None, budget_s=0.05)
    journal.attach(lambda end_reason: part(1, *lines))
    before = repo.write_counts["relaxed"]
    async with writer_busy(repo):
        for n in range(1, 6):
            lines.append(f"line {n}")
            journal.checkpoint()
            await journal.saved()  # not written within the budget: in the spool
        assert len(spool_path(db_path).read_bytes().splitlines()) == 5
    await journal.flush()

    # the held write, the first turn's (already under way), then the last, carrying the three between
    assert repo.write_counts["relaxed"] - before == 3
    assert rows(db_path, "SELECT content FROM messages WHERE call_id = 'c1' ORDER BY seq") == [
        (f"line {n}",) for n in range(1, 6)
    ]
