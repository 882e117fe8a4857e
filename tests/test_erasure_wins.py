"""Erasure wins: a call running when its caller is erased (by another process) never writes them back,
``forget NUMBER`` reaches the number's calls where no name was given, and ``forget_me`` is carried out
even when the database refuses it at the time: on SQLite (the files' bytes and the full-text index's own
terms) and on PostgreSQL (every table)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
from pathlib import Path

from test_failing_database import write_lock_held
from test_postgres_backend import refuse_connections
from test_trust import memory_agent
from workers import talk_through_an_erasure

from conftest import Backend, rows, scripted_call, traces
from db import open_repository
from memory_agent.scripted_llm import Say, ToolCall

SPAWN = multiprocessing.get_context("spawn")

NUMBER = "+14155550177"
SECRET = "quokkafritters"  # a word only this caller ever says
EMAIL = "quinn.q@example.com"

TALK = [
    Say("Welcome to Bella Vista! Your name?"),
    ToolCall("save_customer_name", {"name": "Quinn"}),
    Say("Hi Quinn! What would you like?"),
    (
        ToolCall("add_to_order", {"item": "margherita", "quantity": 2}),
        ToolCall("remember_preference", {"about": "crust", "preference": f"{SECRET} style"}),
    ),
    Say("Two margheritas. Place it?"),
    # after the erasure
    ToolCall("confirm_order"),
    Say("Sorry, I could not place it."),
    Say("Noted."),
]
BEFORE = ["I'm Quinn", f"Two margheritas, and my crust {SECRET} style please"]
AFTER = ["Yes, place it", f"and my email is {EMAIL}, I love {SECRET}"]
NEEDLES = ["Quinn", SECRET, EMAIL, NUMBER]


def fts_terms(db_path: Path, prefix: str) -> list[str]:
    """The terms the full-text indexes themselves hold that start with ``prefix`` (their own data, not the file)."""
    conn = sqlite3.connect(db_path)
    try:
        found = []
        for index in ("messages_fts", "feedback_fts"):
            conn.execute(f"CREATE VIRTUAL TABLE temp.{index}_terms USING fts5vocab(main, {index}, 'row')")
            found += [
                r[0] for r in conn.execute(f"SELECT term FROM temp.{index}_terms WHERE term LIKE ?", (prefix + "%",))
            ]
        return found
    finally:
        conn.close()


def sqlite_holds(db_path: Path, needles: list[str]) -> dict[str, list[str]]:
    """Which files of the database hold any needle, byte for byte, and which needles its full-text indexes hold."""
    found = traces(db_path, *needles)
    words = [n for n in needles if n.isalpha()]
    if hits := [n for n in words if fts_terms(db_path, n.lower()[:6])]:
        found["full-text index"] = hits
    return found


def holds(backend: Backend, needles: list[str]) -> dict[str, list[str]]:
    """Where the database still holds any needle: on SQLite also in its full-text indexes' own terms."""
    return sqlite_holds(Path(backend.target), needles) if backend.name == "sqlite" else backend.holds(*needles)


async def test_a_call_running_when_its_caller_is_erased_by_another_process_never_writes_them_back(backend, tmp_path):
    target = backend.target
    ready, go_on, report = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(
        target=talk_through_an_erasure,
        args=(target, str(tmp_path), NUMBER, TALK, BEFORE, AFTER, ready, go_on, report),
    )
    child.start()
    try:
        assert await asyncio.to_thread(ready.wait, 120), "the call never got going"
        assert holds(backend, NEEDLES) != {}, "the call wrote nothing to erase"

        erased = await asyncio.to_thread(memory_agent, "forget", NUMBER, "--db", target, cwd=tmp_path)

        assert erased.returncode == 0, erased.stderr
        assert erased.stdout.startswith("erased: customers 1, calls 1,")
        go_on.set()
        errors, knew = await asyncio.to_thread(report.get, timeout=120)
    finally:
        go_on.set()
        await asyncio.to_thread(child.join, 120)
    assert child.exitcode == 0

    assert holds(backend, NEEDLES) == {}
    assert knew, "the call did not learn that its caller was erased"
    assert any("could not be recorded" in error for error in errors), errors  # the order was never promised
    async with open_repository(target, spool_dir=tmp_path) as repo:
        counts = await repo.read("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM calls)", ())
        assert [tuple(row) for row in counts] == [(0, 0)]
        scopes = await repo.read("SELECT scope FROM erasures", ())
        assert [tuple(row) for row in scopes] == [("number",)]


async def test_a_call_of_this_process_erased_mid_call_writes_nothing_more_and_a_later_call_is_remembered(any_repo):
    call, _ = await scripted_call(any_repo, NUMBER, TALK, BEFORE, finish=False, trust_caller_id=True)
    await call.journal.flush()

    await any_repo.forget(NUMBER)
    for line in AFTER:
        await call.session.run(user_input=line)
    await call.finish()

    assert call.journal.erased
    counts = await any_repo.read("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM messages)", ())
    assert [tuple(row) for row in counts] == [(0, 0)]
    # a call that begins after the erasure is a new start
    await scripted_call(any_repo, NUMBER, TALK[:3], BEFORE[:1], trust_caller_id=True)
    assert [tuple(row) for row in await any_repo.read("SELECT name FROM customers", ())] == [("Quinn",)]


# -- the number's calls where no name was given ----------------------------------------------------

ANSWERED = "zebracakes"
NAMED = [
    Say("Welcome! Your name?"),
    ToolCall("save_customer_name", {"name": "Maria"}),
    Say("Hi Maria! What would you like?"),
]
UNNAMED = [
    Say("Who's calling?"),
    ToolCall("transfer_to_order_taker"),
    Say("What would you like?"),
    ToolCall("add_to_order", {"item": "tiramisu"}),
    ToolCall("confirm_order"),
    Say("Placed. How was it?"),
    ToolCall("record_feedback", {"rating": 5, "comment": f"loved the {ANSWERED}"}),
    Say("Thanks!"),
]
UNNAMED_LINES = ["just order", f"a tiramisu, and mail the receipt to {EMAIL}", f"5, loved the {ANSWERED}"]


async def calls_with_and_without_a_name(target: str, tmp_path: Path) -> None:
    async with open_repository(target, spool_dir=tmp_path) as repo:
        await scripted_call(repo, NUMBER, NAMED, ["I'm Maria"], trust_caller_id=True)
        await scripted_call(repo, NUMBER, UNNAMED, UNNAMED_LINES)  # not vouched for: no name, no profile
        found = await repo.read("SELECT count(*) FROM calls WHERE customer_id IS NULL AND caller_number = ?", (NUMBER,))
        assert found[0][0] == 1


async def test_forget_number_erases_its_calls_where_no_name_was_given(backend, tmp_path):
    target = backend.target
    await calls_with_and_without_a_name(target, tmp_path)

    held = memory_agent("export-caller", NUMBER, "--db", target, cwd=tmp_path)
    assert held.returncode == 0, held.stderr
    [unnamed] = json.loads(held.stdout)["calls_without_profile"]
    assert unnamed["order"]["items"][0]["menu_item"] == "tiramisu"
    assert unnamed["feedback"]["comment"] == f"loved the {ANSWERED}"
    assert any(EMAIL in line["content"] for line in unnamed["transcript"])

    done = memory_agent("forget", NUMBER, "--db", target, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("erased: customers 1, calls 2, orders 1,")
    assert holds(backend, [ANSWERED, EMAIL, NUMBER, "Maria"]) == {}
    again = memory_agent("export-caller", NUMBER, "--db", target, cwd=tmp_path)
    assert again.returncode != 0 and "nothing is held" in again.stderr


async def test_forget_with_a_name_leaves_the_numbers_calls_where_no_name_was_given(db_path, tmp_path):
    await calls_with_and_without_a_name(str(db_path), tmp_path)

    done = memory_agent("forget", NUMBER, "--name", "maria", "--db", str(db_path), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert rows(db_path, "SELECT count(*) FROM customers") == [(0,)]
    assert rows(db_path, "SELECT customer_id, caller_number FROM calls") == [(None, NUMBER)]
    assert rows(db_path, "SELECT comment FROM feedback") == [(f"loved the {ANSWERED}",)]


# -- forget_me when the database refuses ------------------------------------------------------------

FORGET_ME = [
    Say("Welcome! Your name?"),
    ToolCall("save_customer_name", {"name": "Quinn"}),
    Say("Hi Quinn!"),
    ToolCall("forget_me", {"confirmed": True}),
    Say("We will forget you when we hang up."),
]


async def test_forget_me_with_the_database_locked_is_spooled_and_carried_out_later(db_path, caplog):
    async with open_repository(db_path, busy_timeout_ms=20) as repo:
        call, _ = await scripted_call(
            repo, NUMBER, FORGET_ME, ["I'm Quinn", f"forget me and the {SECRET}"], finish=False, trust_caller_id=True
        )
        await call.journal.flush()  # the checkpoints so far are in before the lock is taken
        with write_lock_held(db_path):
            await call.finish()  # neither the call's last record nor the erasure gets in: both are spooled
        assert "the caller's erasure was spooled" in caplog.text
        assert rows(db_path, "SELECT name FROM customers") == [("Quinn",)]  # the checkpoints got in before

    async with open_repository(db_path) as repo:  # the next start carries it out
        await repo.recovered()
        assert not repo.spool_file.exists()

    assert rows(db_path, "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM calls)") == [(0, 0)]
    assert rows(db_path, "SELECT scope FROM erasures") == [("profile",)]
    assert sqlite_holds(db_path, ["Quinn", SECRET, NUMBER]) == {}


async def test_forget_me_with_postgresql_refusing_is_spooled_and_carried_out_later(pg_url, tmp_path, caplog):
    async with open_repository(pg_url, spool_dir=tmp_path, busy_timeout_ms=20) as repo:
        await repo.recovered()
        call, _ = await scripted_call(
            repo, NUMBER, FORGET_ME, ["I'm Quinn", f"forget me and the {SECRET}"], finish=False, trust_caller_id=True
        )
        await call.journal.flush()
        refuse_connections(pg_url, True)
        try:
            await call.finish()  # neither the call's last record nor the erasure gets in: both are spooled
        finally:
            refuse_connections(pg_url, False)
        assert "the caller's erasure was spooled" in caplog.text
    assert Backend("postgres", pg_url, tmp_path).holds("Quinn") != {}  # the checkpoints got in before

    async with open_repository(pg_url, spool_dir=tmp_path) as repo:  # the next start carries it out
        await repo.recovered()
        assert not repo.spool_file.exists()

    assert Backend("postgres", pg_url, tmp_path).holds("Quinn", SECRET, NUMBER) == {}
