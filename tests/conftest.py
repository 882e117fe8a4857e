"""Fixtures: a migrated SQLite file in a temporary folder (or a PostgreSQL database of its own, for the tests
that run on both backends) and scripted calls through the real agents."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_server import pg_migrated, pg_migrated_url, pg_server, pg_url  # noqa: F401  (fixtures)
from psycopg.sql import SQL, Identifier

from db import CallSnapshot, Repository, open_repository
from db.postgres.queries import qmark
from db.postgres.repository import postgres_spool_path
from db.spool import SUFFIX, spool_path
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


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where a test's data lives: a SQLite file, or a PostgreSQL database of its own on the session's server."""

    name: str  # "sqlite" or "postgres"
    target: str  # what ``open_repository`` and the CLI's ``--db`` take: the file's path or the database's URL
    spool_dir: Path  # this host's spool (and, on PostgreSQL, the erasure key) live here

    def open(self, **options: Any) -> AbstractAsyncContextManager[Repository]:
        """The repository on this database, opened as the worker opens it (``open_repository``'s options)."""
        return open_repository(self.target, spool_dir=self.spool_dir, **options)

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Read the database the way an owner would: a plain connection of its own; ``?`` placeholders."""
        if self.name == "sqlite":
            return rows(Path(self.target), sql, params)
        with psycopg.connect(self.target, autocommit=True) as conn:
            cursor = conn.execute(qmark(sql), tuple(params)) if params else conn.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]

    @property
    def spool_file(self) -> Path:
        """This host's spool of the snapshots (and erasures) the database refused."""
        if self.name == "sqlite":
            return spool_path(self.target, self.spool_dir)
        return postgres_spool_path(self.target, self.spool_dir)

    def holds(self, *needles: str) -> dict[str, list[str]]:
        """Where the database still holds any of ``needles``: which of the SQLite files (the log and the spool
        included), byte for byte, or which PostgreSQL tables, in any column, and which of this host's spools."""
        if self.name == "sqlite":
            return traces(Path(self.target), *needles)
        stem = self.spool_file.name.removesuffix(SUFFIX)
        found = _files_holding(list(self.spool_dir.glob(stem + ".spool*")), needles)
        with psycopg.connect(self.target, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ).fetchall()
            for (table,) in tables:
                held = conn.execute(SQL("SELECT t::text FROM {} AS t").format(Identifier(table))).fetchall()
                text = "\n".join(row[0] for row in held)
                if hits := [n for n in needles if n in text]:
                    found[table] = hits
        return found

    @contextlib.contextmanager
    def refusing(self) -> Iterator[None]:
        """The database refuses writes: another connection holds SQLite's write lock (open the repository with
        a short ``busy_timeout_ms``), or the PostgreSQL database refuses every connection."""
        if self.name == "sqlite":
            from test_failing_database import write_lock_held

            with write_lock_held(Path(self.target)):
                yield
            return
        from test_postgres_backend import refuse_connections

        refuse_connections(self.target, True)
        try:
            yield
        finally:
            refuse_connections(self.target, False)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each backend in turn: a test that takes this runs on SQLite, then on PostgreSQL."""
    target = str(tmp_path / "memory.db") if request.param == "sqlite" else request.getfixturevalue("pg_migrated_url")
    return Backend(request.param, target, tmp_path)


@pytest.fixture
async def any_repo(backend: Backend) -> AsyncIterator[Repository]:
    """The repository on each backend in turn, its recovery at open done."""
    async with backend.open() as repository:
        await repository.recovered()
        yield repository


def rows(db_path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    """Read the database the way an owner would: a separate plain sqlite3 connection."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def traces(db_path: Path, *needles: str) -> dict[str, list[str]]:
    """Which of the database's files still hold any of ``needles``, byte for byte."""
    files = [db_path, *db_path.parent.glob(db_path.name + "-*"), *db_path.parent.glob(db_path.name + ".spool*")]
    return _files_holding(files, needles)


def _files_holding(files: Iterable[Path], needles: Sequence[str]) -> dict[str, list[str]]:
    found = {}
    for file in files:
        data = file.read_bytes()
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[file.name] = hits
    return found


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
