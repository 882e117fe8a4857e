"""Fixtures: a migrated SQLite file in a temporary folder and scripted calls through the real agents."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pg_server import pg_server, pg_url  # noqa: F401  (fixtures)

from db import CallSnapshot, Repository, open_repository
from memory_agent import Call, CallConfig, start_call
from memory_agent.identity import Caller
from memory_agent.scripted_llm import ScriptedLLM, Step

pytest_plugins = ["ci_skips"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture
async def repo(db_path: Path) -> AsyncIterator[Repository]:
    async with open_repository(db_path) as repository:
        yield repository


@pytest.fixture(params=["sqlite", "postgres"])
async def any_repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    """The repository on each backend in turn: a SQLite file, then a PostgreSQL database of its own."""
    target = str(tmp_path / "memory.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    async with open_repository(target, spool_dir=tmp_path) as repository:
        await repository.recovered()
        yield repository


def rows(db_path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    """Read the database the way an owner would: a separate plain sqlite3 connection."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def scripted_call(
    repo: Repository,
    identity: str | None,
    steps: Iterable[Step],
    user_lines: Iterable[str] = (),
    *,
    finish: bool = True,
    trust_caller_id: bool = False,
    **options: Any,
) -> tuple[Call, ScriptedLLM]:
    """Run one call: the greeting, then each user line as a turn; finish it unless told not to.

    ``identity``: typed, as the chat takes it (a number in E.164 is a phone caller nobody attested).
    ``options``: the ``CallConfig``'s fields (a menu, a time zone) and ``start_call``'s own (a staff line).
    """
    llm = ScriptedLLM(steps)
    fields = {f.name for f in dataclasses.fields(CallConfig)}
    config = CallConfig(trust_caller_id=trust_caller_id, **{k: v for k, v in options.items() if k in fields})
    own = {k: v for k, v in options.items() if k not in fields}
    call = await start_call(repo, Caller.typed(identity), config, llm=llm, **own)
    assert call.greeting is not None
    await call.greeting
    for line in user_lines:
        await call.session.run(user_input=line)
    if finish:
        await call.finish()
    return call, llm


async def open_call(repo: Repository, *, call_id: str, identity: str | None, started_at: str) -> int | None:
    """Record a call's start as the journal does; returns the caller's customer id."""
    await repo.save_call(CallSnapshot(call_id=call_id, identity=identity, started_at=started_at))
    found = await repo.read("SELECT customer_id FROM calls WHERE id = ?", (call_id,))
    return found[0][0]


@contextlib.contextmanager
def lookup_stalled() -> Iterator[tuple[threading.Event, Callable[..., int]]]:
    """An authorizer that stalls the caller lookup inside SQLite (as a slow disk would) until released."""
    release = threading.Event()

    def authorizer(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table == "order_items":  # only the lookup reads items
            release.wait(timeout=30)
        return sqlite3.SQLITE_OK

    yield release, authorizer
    release.set()


def open_all_hours(folder: Path) -> Path:
    """A restaurant file for Bella Vista open whenever a test runs (the packaged one closes on Mondays)."""
    menu = Path(__file__).parents[1] / "memory_agent" / "menu.toml"
    path = folder / "restaurant.toml"
    path.write_text(f'name = "Bella Vista"\nmenu = "{menu}"\n')
    return path
