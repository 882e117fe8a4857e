"""Connections: opening and checking the file, migrating it, and the one writer thread.

Reads go through aiosqlite (a connection of their own, so a write waiting for SQLite's lock
never holds up the caller lookup). Writes go to one thread that owns a plain ``sqlite3``
connection and runs each write as a function inside one ``BEGIN IMMEDIATE`` transaction, in a
single hop from the event loop (the shape of Datasette's ``execute_write_fn``).

Writes wait in one queue: *urgent* ones (a placed order, which the caller waits for) first, then
relaxed ones (a call's turns, spooled if not written within their budget), then the other forced
ones (a call's final record, the spool's replay), so a placed order waits behind no other call's
writes, and a turn's write behind no replay.
Writes that may share a transaction (``group``: a call's snapshot), queued while the thread was
busy, share one: each in a savepoint of its own, so one that fails is undone alone, and one
commit, one turn of the writers' lock and, when forced, one flush for them all.

Durability is chosen per transaction: a *forced* write (``synchronous = FULL``) is on disk when
it returns, and survives power loss; a *relaxed* one (``NORMAL``, the WAL default) survives the
process being killed, since the operating system already holds it, but may be lost with the
power. The calls decide which they need (see ``memory_agent.journal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from db.errors import DatabaseUnavailable, NotADatabase, RepositoryError
from db.safe_url import redact_url
from db.sqlite import migrate
from db.sqlite.writer_lock import WriterLock, WriterLockTimeout

_T = TypeVar("_T")

BUSY_TIMEOUT_MS = 5_000
WRITE_ATTEMPTS = 3
# The WAL is copied into the main file once the writes pause this long (and whenever SQLite's own
# limit of 1,000 pages is reached), so a plain copy of the main file is never far behind, and a
# call's turns, seconds apart, do not each pay a checkpoint's flushes.
CHECKPOINT_IDLE_S = 2.0
# After a checkpoint the WAL file is cut back to this size instead of staying at its largest.
WAL_SIZE_LIMIT = 1 << 20
# Writes that share one transaction at most (a transaction holds SQLite's lock for all of them).
GROUP_LIMIT = 32


def database_path(url_or_path: str | Path) -> str:
    """Accept a plain path or a ``sqlite://`` URL and return the file path."""
    text = str(url_or_path)
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    if "://" in text:
        raise NotADatabase(f"unsupported database URL {redact_url(text)!r}: use a path or sqlite:///path")
    return text


def prepare(path: str, busy_timeout_ms: int) -> None:
    """Check the file is ours (or new), then switch on WAL and migrate; never touches foreign files."""
    file = Path(path)
    if file.is_dir():
        raise NotADatabase(f"database path {path} is a directory")
    if not file.parent.is_dir():
        raise NotADatabase(f"folder {file.parent} does not exist")
    with contextlib.suppress(FileExistsError):
        # Personal data: readable by its owner only (SQLite gives its -wal and -shm the same mode).
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        try:
            migrate.schema_version(conn)
        except NotADatabase as exc:
            raise NotADatabase(f"{path}: {exc}") from None
        conn.execute("PRAGMA journal_mode = WAL")
        migrate.migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(f"{path} is not a usable database ({exc})") from None
    finally:
        conn.close()


async def connect_reader(path: str, busy_timeout_ms: int) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    await conn.execute("PRAGMA query_only = ON")
    conn.row_factory = sqlite3.Row
    return conn


class Busy(Exception):
    """BEGIN IMMEDIATE found the write lock taken past the busy timeout: worth retrying."""


@dataclass(eq=False)
class _Write:
    body: Callable[..., Any]
    args: tuple[object, ...]
    forced: bool
    group: bool
    urgent: bool
    done: asyncio.Future[Any]

    @property
    def rank(self) -> int:
        """0: urgent, 1: relaxed, 2: forced; the lowest waiting goes first."""
        return 0 if self.urgent else 2 if self.forced else 1


class Writer:
    """The one thread that writes: ``await writer.run(body, *args)`` runs ``body(db, *args)`` in a transaction.

    Nothing is awaited while SQLite's write lock is held, so a transaction is as short as SQLite
    allows; a busy database is retried within a bound (``WRITE_ATTEMPTS`` tries, each waiting up to
    the busy timeout). ``counts`` tallies committed transactions as ``forced`` or ``relaxed``, and
    as ``grouped`` the writes that shared a transaction with another (a commit saved each).
    """

    def __init__(self, path: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self._lock = asyncio.Lock()  # one transaction (or checkpoint) at a time, retries included
        self._queue: list[_Write] = []
        self._serving: asyncio.Task[None] | None = None
        self._writers = WriterLock(path, timeout_s=busy_timeout_ms / 1000)
        self._busy_timeout_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None
        self._last_write = time.monotonic()
        self._idle: asyncio.TimerHandle | None = None  # the checkpoint due once writes pause

    async def start(self) -> None:
        await self._hop(self._connect)

    async def run(
        self, body: Callable[..., _T], *args: object, forced: bool = False, group: bool = False, urgent: bool = False
    ) -> _T:
        """``body(db, *args)`` in a transaction; ``forced``: on disk when this returns (and after the relaxed
        writes waiting); ``urgent``: ahead of every write waiting that is not; ``group``: it may share its
        transaction with other such writes of its rank waiting."""
        write = _Write(body, args, forced, group, urgent, asyncio.get_running_loop().create_future())
        self._queue.append(write)
        if self._serving is None or self._serving.done():
            self._serving = asyncio.create_task(self._serve(), name="db-writer")
        result: _T = await write.done
        return result

    @property
    def waiting(self) -> int:
        """Writes asked for and not yet taken up by the thread."""
        return sum(not write.done.cancelled() for write in self._queue)

    async def _serve(self) -> None:
        while batch := self._next():
            try:
                outcomes = await self._commit(batch)
            except BaseException as exc:  # every write of the batch hears why (a cancellation too)
                for write in batch:
                    if not write.done.done():
                        stopped = DatabaseUnavailable("the database writer was stopped")
                        write.done.set_exception(exc if isinstance(exc, Exception) else stopped)
                if not isinstance(exc, Exception):
                    raise
                continue
            for write, (ok, value) in zip(batch, outcomes, strict=True):
                if write.done.done():
                    continue
                if ok:
                    write.done.set_result(value)
                else:
                    write.done.set_exception(value)

    def _next(self) -> list[_Write]:
        """The next transaction's writes: the first of the highest rank waiting, with every write of its rank
        waiting that may share it, when it may."""
        self._queue = [write for write in self._queue if not write.done.cancelled()]
        if not self._queue:
            return []
        first = min(self._queue, key=lambda write: write.rank)  # the first of them, on a tie
        batch = [first]
        if first.group:
            same = (w for w in self._queue if w is not first and w.group and w.rank == first.rank)
            batch += [write for write, _ in zip(same, range(GROUP_LIMIT - 1), strict=False)]
        taken = set(map(id, batch))
        self._queue = [write for write in self._queue if id(write) not in taken]
        return batch

    async def _commit(self, batch: list[_Write]) -> list[tuple[bool, Any]]:
        async with self._lock:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    outcomes = await self._hop(self._transaction, batch)
                    self._checkpoint_when_idle()
                    return outcomes
                except Busy as exc:
                    if attempt == WRITE_ATTEMPTS:
                        raise DatabaseUnavailable(f"database write refused: {exc}") from None
                    await asyncio.sleep(0.05 * attempt)
                except sqlite3.OperationalError as exc:
                    raise DatabaseUnavailable(f"database write refused: {exc}") from None
                except sqlite3.Error as exc:
                    raise RepositoryError(f"database refused the write: {exc}") from None
        raise AssertionError("unreachable")

    async def checkpoint(self, *, mode: str = "PASSIVE") -> bool:
        """Copy the WAL into the main file now (``TRUNCATE`` also empties it); False if readers held it back."""
        async with self._lock:
            return await self._hop(self._checkpoint, mode)

    def _checkpoint_when_idle(self) -> None:
        """Copy the WAL into the main file once no write has come for ``CHECKPOINT_IDLE_S``."""
        self._last_write = time.monotonic()
        if self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(CHECKPOINT_IDLE_S, self._on_idle)

    def _on_idle(self) -> None:
        waited = time.monotonic() - self._last_write
        if waited < CHECKPOINT_IDLE_S:  # written to since: wait for the pause
            self._idle = asyncio.get_running_loop().call_later(CHECKPOINT_IDLE_S - waited, self._on_idle)
            return
        self._idle = None
        self._thread.submit(self._checkpoint_quietly)  # after any transaction queued on the thread

    async def close(self) -> None:
        while self._serving is not None and not self._serving.done():  # the writes asked for before closing
            await asyncio.wait([self._serving])
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._db is not None:
            try:
                await self.checkpoint(mode="TRUNCATE")
            except sqlite3.Error:
                pass  # busy readers: the next open checkpoints
            await self._hop(self._disconnect)
        self._thread.shutdown(wait=False)

    async def _hop(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- on the writer thread ---------------------------------------------------------------

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA secure_delete = ON")  # deleted personal data leaves no trace in free pages
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        self._db = db

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _transaction(self, batch: list[_Write]) -> list[tuple[bool, Any]]:
        """Run the writes of ``batch`` in one transaction, each undone alone if it fails (its outcome is
        ``(False, exception)``). The database refusing (``OperationalError``) undoes them all, and raises."""
        db = self._db
        assert db is not None, "the writer is closed"
        forced = any(write.forced for write in batch)
        if forced:
            db.execute("PRAGMA synchronous = FULL")
        try:
            self._begin(db)
            try:
                outcomes = [self._one(db, write) for write in batch]
                db.execute("COMMIT" if any(ok for ok, _ in outcomes) else "ROLLBACK")
            except BaseException:
                try:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                finally:
                    self._writers.release()
                raise
            self._writers.release()
        finally:
            if forced:
                db.execute("PRAGMA synchronous = NORMAL")
        if written := sum(ok for ok, _ in outcomes):
            self.counts["forced" if forced else "relaxed"] += 1
            self.counts["grouped"] += written - 1
        return outcomes

    @staticmethod
    def _one(db: sqlite3.Connection, write: _Write) -> tuple[bool, Any]:
        db.execute("SAVEPOINT write")
        try:
            result = write.body(db, *write.args)
        except sqlite3.OperationalError:
            raise  # the database itself is refusing: no write would fare better
        except Exception as exc:  # noqa: BLE001  (this write is undone, the others are kept)
            db.execute("ROLLBACK TO write")
            db.execute("RELEASE write")
            if isinstance(exc, sqlite3.Error):
                return False, RepositoryError(f"database refused the write: {exc}")
            return False, exc
        db.execute("RELEASE write")
        return True, result

    def _begin(self, db: sqlite3.Connection) -> None:
        """Queue behind other writers, then take SQLite's write lock; Busy if either is held too long."""
        try:
            self._writers.acquire()
        except WriterLockTimeout as exc:
            raise Busy(str(exc)) from None
        try:
            db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._writers.release()
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                raise Busy(str(exc)) from None
            raise

    def _checkpoint_quietly(self) -> None:
        if self._db is None:
            return
        try:
            self._checkpoint("PASSIVE")
        except sqlite3.Error:
            pass  # a checkpoint is an optimization: the next one catches up

    def _checkpoint(self, mode: str) -> bool:
        assert self._db is not None
        busy = self._db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
        return not busy
