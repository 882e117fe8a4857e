"""A write written once as a plan runs the same on SQLite and PostgreSQL; careful, each part stands alone."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from db.statements.plan import (
    Parts,
    Plan,
    Read,
    StatementFailed,
    count,
    every,
    execute,
    later,
    many,
    number_lock,
    one,
    run_postgres,
    run_sqlite,
)

NOTES = sa.Table(
    "notes",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("body", sa.Text),
)
SCHEMA = (
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, topic TEXT NOT NULL UNIQUE,"
    " body TEXT CONSTRAINT short_body CHECK (length(body) < 20))"
)
ADD = sa.insert(NOTES).values(id=sa.bindparam("id"), topic=sa.bindparam("topic"), body=sa.bindparam("body"))
BODY = sa.select(NOTES.c.body).where(NOTES.c.topic == sa.bindparam("topic"))
TOPICS = sa.select(NOTES.c.topic).order_by(NOTES.c.id)
SHORTEN = sa.update(NOTES).values(body="short").where(NOTES.c.body.is_not(None))
HOW_MANY = sa.select(sa.func.count()).select_from(NOTES)
MISSING = sa.text("INSERT INTO no_such_table VALUES (1)")

A_SECRET = "the caller's secret, far too long to be kept"

Runner = Callable[[Plan[Any]], Awaitable[Any]]


def note(n: int, topic: str, body: str | None) -> Plan[None]:
    yield execute(ADD, {"id": n, "topic": topic, "body": body})
    stored = yield one(BODY, {"topic": topic})
    assert stored == (body,)


def shorten() -> Plan[int]:
    changed = yield count(SHORTEN)
    return int(changed)


def three_notes(careful: bool, middle: str) -> Plan[tuple[list[str], int, list[str]]]:
    parts = Parts(careful)
    yield from parts.part("first", note(1, "first", "kept"))
    yield from parts.part("second", note(2, "second", middle))
    yield from parts.part("third", note(3, "third", None))
    sent = yield later(HOW_MANY)
    yield number_lock("+15550100", shared=True)  # PostgreSQL only: nothing to run on SQLite
    stored = yield Read(sent)
    topics = yield every(TOPICS)
    return parts.skipped, stored[0], [topic for (topic,) in topics]


@pytest.fixture(params=["sqlite", "postgres"])
async def run(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runner]:
    """Each plan in a transaction of its own, committed if it returns, rolled back if it raises."""
    if request.param == "sqlite":
        db = sqlite3.connect(tmp_path / "plans.db", isolation_level=None)
        request.addfinalizer(db.close)
        db.execute(SCHEMA)

        async def on_sqlite(plan: Plan[Any]) -> Any:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = run_sqlite(db, plan)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        yield on_sqlite
        return
    conn = await psycopg.AsyncConnection.connect(request.getfixturevalue("pg_url"), autocommit=True)
    await conn.execute(SCHEMA)

    async def on_postgres(plan: Plan[Any]) -> Any:
        async with conn.transaction():
            return await run_postgres(conn, plan)

    yield on_postgres
    await conn.close()


async def test_a_careful_part_that_fails_is_left_out_and_the_rest_kept(run: Runner) -> None:
    skipped, stored, topics = await run(three_notes(careful=True, middle=A_SECRET))

    assert topics == ["first", "third"]
    assert stored == 2
    assert len(skipped) == 1 and skipped[0].startswith("second: ")
    assert "short_body" in skipped[0] or "CHECK" in skipped[0]
    assert A_SECRET not in skipped[0]  # what the caller said stays out of the log


async def test_a_part_that_fails_fails_the_whole_write_unless_careful(run: Runner) -> None:
    with pytest.raises(StatementFailed) as failed:
        await run(three_notes(careful=False, middle=A_SECRET))
    assert A_SECRET not in str(failed.value)

    _, stored, topics = await run(three_notes(careful=False, middle="fine"))
    assert (stored, topics) == (3, ["first", "second", "third"])


async def test_rows_go_in_many_at_once_and_the_count_comes_back(run: Runner) -> None:
    def plan() -> Plan[int]:
        yield many(ADD, [{"id": n, "topic": f"t{n}", "body": "long enough"} for n in range(1, 6)])
        yield many(ADD, [])  # nothing to send
        return (yield from shorten())

    assert await run(plan()) == 5


def test_the_database_refusing_ends_even_a_careful_write(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "plans.db", isolation_level=None)
    db.execute(SCHEMA)

    def missing() -> Plan[None]:
        yield execute(MISSING)

    def plan() -> Plan[list[str]]:
        parts = Parts(careful=True)
        yield from parts.part("first", note(1, "first", "kept"))
        yield from parts.part("missing", missing())
        return parts.skipped

    db.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError):
        run_sqlite(db, plan())
    db.execute("ROLLBACK")
    db.close()


async def test_a_pipelined_write_sends_what_nothing_waits_for(pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(SCHEMA)
        async with conn.pipeline(), conn.transaction():
            skipped, stored, topics = await run_postgres(conn, three_notes(careful=False, middle="fine"))
        assert (skipped, stored, topics) == ([], 3, ["first", "second", "third"])
        async with conn.pipeline(), conn.transaction():
            changed = await run_postgres(conn, shorten())
        assert changed == 2
