"""The repository: the product's reads and writes of callers and calls.

A call reaches the database as snapshots (``CallSnapshot``): ``save_call`` writes one in one
transaction, idempotently; ``spool`` keeps one on disk when the database will not take it.
Reads go through their own connection, so a write waiting for SQLite's lock never holds up
a caller lookup.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from db import attempts, privacy, recovery, stale
from db.attempts import Outcome
from db.backend import Erasure, counted_with_spool
from db.clock import to_iso, utcnow, utcnow_iso
from db.errors import DatabaseUnavailable, NotADatabase, NotFound
from db.owner import current_owner
from db.schema.models import CallSnapshot, CustomerMemory, ErasureRequest, PastOrder
from db.spool import Appender, ReplayResult, in_spool_thread, spool_path
from db.sqlite import calls, migrate
from db.sqlite import privacy as sqlite_privacy
from db.sqlite.connection import BUSY_TIMEOUT_MS, Writer, connect_reader, database_path, prepare
from db.sqlite.reports import open_read_only
from db.statements import calls as lookup
from db.statements import privacy as privacy_statements
from db.statements.sql import compiled

log = logging.getLogger("memory_agent.db")

_T = TypeVar("_T")


class SqliteRepository:
    """Reads and writes of customers and their calls."""

    def __init__(self, path: str, reader: aiosqlite.Connection, writer: Writer, spool_file: Path) -> None:
        self.path = path
        self.reader = reader
        self.writer = writer
        self.spool_file = spool_file
        self.audit_key = privacy.AuditKey(Path(f"{path}.erasure-key"))
        self.spooler = Appender(spool_file)
        self.spooled = asyncio.Event()  # set when this process spools a snapshot
        self.replaying = asyncio.Lock()  # one replay of the spool at a time in this process
        self.recovery: asyncio.Task[None] | None = None

    async def recovered(self) -> None:
        """Wait for the recovery started at open (spool replay, stale calls, retention) to end."""
        if self.recovery is not None:
            await self.recovery

    @property
    def write_counts(self) -> Counter[str]:
        """Committed write transactions so far, as ``forced`` (on disk at once) and ``relaxed``."""
        return self.writer.counts

    # -- reads ------------------------------------------------------------------------------

    async def recall(self, identity: str) -> CustomerMemory | None:
        """What we know of one profile: one indexed statement, whatever their history."""
        found = lookup.profiles_from_rows(await self.read(compiled(lookup.RECALL, "sqlite"), {"identity": identity}))
        return found[0] if found else None

    async def household(self, caller: str) -> tuple[CustomerMemory, ...]:
        """Every profile that answers on a number (or identity): one indexed statement."""
        return lookup.profiles_from_rows(await self.read(compiled(lookup.HOUSEHOLD, "sqlite"), {"household": caller}))

    async def past_orders(self, identity: str, limit: int) -> list[PastOrder]:
        """The profile's last ``limit`` placed orders with their lines, newest first."""
        rows = await self.read(compiled(lookup.PAST_ORDERS, "sqlite"), {"identity": identity, "limit": limit})
        return lookup.past_orders_from_rows(rows)

    async def customer(self, identity: str) -> dict[str, object] | None:
        """The customer row for an identity, as a dict."""
        rows = await self.read("SELECT * FROM customers WHERE participant_identity = ?", (identity,))
        return dict(rows[0]) if rows else None

    async def call_summary(self, call_id: str) -> dict[str, object]:
        """One call at a glance: its order, items, feedback and transcript size."""
        rows = await self.read(compiled(lookup.CALL_SUMMARY, "sqlite"), {"call_id": call_id})
        if not rows:
            raise NotFound(f"no call {call_id!r}")
        return dict(rows[0])

    async def read(self, sql: str, params: Sequence[object] | Mapping[str, object]) -> list[sqlite3.Row]:
        """Rows of one statement, fetched in one hop; SQLite's errors become ``DatabaseUnavailable``."""
        try:
            return list(await self.reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"database read failed: {exc}") from None

    # -- writes -----------------------------------------------------------------------------

    async def save_call(self, snap: CallSnapshot, *, forced: bool = False) -> None:
        """Write a call as ``snap`` has it, in one transaction; safe to repeat and to replay late.

        ``forced``: on disk (power loss included) before this returns. If the write fails on
        its data rather than on the database, it is written again part by part, so one bad row
        never loses the rest of the call. ``CallerErased``: the caller was erased since the call
        began, and nothing was written.
        """
        snap = _owned(snap)
        # A placement (or its replay from the spool) goes ahead of the other writes waiting.
        placing = snap.order is not None and snap.order.status == "placed" and not snap.final

        async def write(careful: bool) -> list[str]:
            return await self.writer.run(
                calls.write_call,
                snap,
                utcnow_iso(),
                careful,
                self.audit_key,
                forced=forced,
                group=True,
                urgent=placing,
            )

        await recovery.save_whole_or_in_parts(snap.call_id, write)

    async def spool(self, snap: CallSnapshot) -> Path:
        """Keep ``snap`` in the spool (fsynced) for the next start to write; raises ``OSError`` if it cannot."""
        await self.spooler.append(_owned(snap))
        self.spooled.set()  # the drainer writes it as soon as the database takes it
        return self.spool_file

    async def spool_erasure(self, request: ErasureRequest) -> Path:
        """Keep an erasure the database would not take in the spool (fsynced), for its replay to carry out."""
        await self.spooler.append(request)
        self.spooled.set()
        return self.spool_file

    async def close_stale_calls(self, *, identity: str | None = None, lease: timedelta = stale.LEASE) -> list[str]:
        """Close as abandoned the open calls (of one caller, or all) whose process is gone; returns their ids."""
        if identity is None:
            rows = await self.read(stale.OPEN_CALLS_SQL, ())
        else:
            rows = await self.read(stale.OPEN_CALLS_OF_CALLER_SQL, (identity,))
        found = stale.find_stale((tuple(row) for row in rows), now=utcnow(), lease=lease)
        if not found:
            return []
        closed = await self.writer.run(calls.close_calls, found, self.spool_file, utcnow_iso())
        for call_id in closed:
            reason = next(c.reason for c in found if c.call_id == call_id)
            log.warning("call %s closed as abandoned: %s", call_id, reason)
        return closed

    async def replay_spool(self) -> ReplayResult:
        return await recovery.replay_spool(self)

    async def erased_since(self, snap: CallSnapshot) -> bool:
        values = await in_spool_thread(privacy.erased_since_values, self.audit_key, snap)
        return values is not None and (await self.read(compiled(lookup.ERASED_SINCE, "sqlite"), values))[0][0] > 0

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the main file now."""
        await self.writer.checkpoint()

    async def record_identity_attempt(self, caller: str, *, call_id: str, outcome: Outcome) -> None:
        subject = await asyncio.to_thread(self.audit_key.subject, caller)
        await self.writer.run(_execute, attempts.INSERT_SQL, (utcnow_iso(), subject, call_id, outcome))

    async def identity_attempts(self, caller: str, *, since: str) -> int:
        if await asyncio.to_thread(self.audit_key.existing) is None:  # no key yet: nothing was ever recorded
            return 0
        subject = await asyncio.to_thread(self.audit_key.subject, caller)
        return int((await self.read(attempts.COUNT_SQL, (subject, since)))[0][0])

    # -- personal data ----------------------------------------------------------------------

    async def forget(
        self,
        identity: str,
        *,
        name: str | None = None,
        exact: bool = False,
        dry_run: bool = False,
        drop_spooled: bool = True,
        online: bool = False,
    ) -> Erasure:
        """Erase the profiles on ``identity`` and the calls from it where no name was given (or the one
        person ``name``, or with ``exact`` the one profile keyed ``identity``) and all that is theirs, in
        one transaction; then empty the write-ahead log and drop their spooled snapshots (unless
        ``drop_spooled`` is False: the spool's replay carrying out an erasure drops them itself). Calls
        still running never write them back. ``dry_run`` only counts. ``online``: an erasure asked for
        during a call, while other calls run (SQLite's cleaning takes no long lock; its audit row says so).
        """

        async def erase_rows() -> dict[str, Any]:
            await asyncio.to_thread(self.audit_key.subject, identity)  # the key exists before the transaction
            erasure = privacy_statements.forget(
                identity, name, exact, dry_run, self.audit_key.subject, utcnow_iso(), online
            )
            return await self.writer.run(sqlite_privacy.forget, erasure, dry_run, forced=True)

        counts = await recovery.erase(
            self, erase_rows, identity, exact=exact, dry_run=dry_run, drop_spooled=drop_spooled
        )
        log_emptied = dry_run or await self.writer.checkpoint(mode="TRUNCATE")
        return Erasure(counts=counts, log_emptied=log_emptied)

    async def export_caller(self, identity: str) -> dict[str, Any]:
        """Everything held about the profiles on ``identity`` and its calls where no name was given, as plain
        data (for a caller's access request)."""
        return await asyncio.to_thread(_read_only, self.path, sqlite_privacy.export_caller, identity)

    async def purge_transcripts(self, *, older_than: timedelta, batch: int = 500) -> dict[str, int]:
        """Remove transcripts and free-text comments older than ``older_than``; orders and ratings stay."""
        cutoff = to_iso(utcnow() - older_than)
        return await recovery.purge_in_batches(lambda: self.writer.run(sqlite_privacy.purge, cutoff, batch), batch)


async def count_erasure(
    url_or_path: str | Path, identity: str, *, name: str | None, spool_dir: str | Path | None
) -> Erasure:
    """What ``forget`` would erase from the SQLite file, by reading only (see ``db.open.count_erasure``)."""
    path = database_path(url_or_path)

    def count() -> dict[str, Any]:
        conn = open_read_only(path)
        try:
            dry_run = privacy_statements.forget(identity, name, False, True, lambda key: "", "")
            return sqlite_privacy.forget(conn, dry_run, True)
        finally:
            conn.close()

    found = await asyncio.to_thread(count)
    return await counted_with_spool(found, identity, spool_path(path, spool_dir))


async def prepare_database(url_or_path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Create and migrate the SQLite file, and open nothing (see ``db.open.prepare_database``)."""
    await asyncio.to_thread(prepare, database_path(url_or_path), busy_timeout_ms)


def _execute(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> None:
    db.execute(sql, params)


def _read_only(path: str, read: Callable[..., _T], *args: object) -> _T:
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    try:
        return read(conn, *args)
    finally:
        conn.close()


def _check_prepared(path: str, busy_timeout_ms: int) -> None:
    """The file exists, is ours and is migrated: a process that attaches never creates or migrates it."""
    if not Path(path).is_file():
        raise NotADatabase(f"database {path} does not exist yet: the worker's process creates it when it starts")
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        version = migrate.schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(f"{path} is not a usable database ({exc})") from None
    except NotADatabase as exc:
        raise NotADatabase(f"{path}: {exc}") from None
    finally:
        conn.close()
    if version != migrate.LATEST_VERSION:
        raise NotADatabase(f"{path} is at schema version {version}, not {migrate.LATEST_VERSION}: not migrated yet")


def _owned(snap: CallSnapshot) -> CallSnapshot:
    """The snapshot marked with the process running the call, unless it already is (a replay)."""
    if snap.owner_pid is not None:
        return snap
    owner = current_owner()
    return snap.model_copy(update={"owner_host": owner.host, "owner_pid": owner.pid, "owner_started": owner.started})


@asynccontextmanager
async def open_sqlite_repository(
    url_or_path: str | Path,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    spool_dir: str | Path | None = None,
    keep_transcripts: timedelta | None = None,
    attach: bool = False,
    sweep: timedelta | None = None,
) -> AsyncIterator[SqliteRepository]:
    """Open the SQLite database and yield the repository.

    Creates and migrates it; then, in the background (``repo.recovery``), replays the snapshots
    spooled while it refused writes, closes the calls left open by processes that died, and (with
    ``keep_transcripts``) removes transcripts and comments older than that; while open, it drains the
    spool and closes calls left by dead processes every ``sweep``. A
    database that still refuses writes does not stop the product from starting. (Reports open
    it read-only with ``db.sqlite.reports.open_read_only``.)

    ``attach``: the connections only, to a file another process prepared (see ``open_repository``);
    ``NotADatabase`` if it is missing or not migrated.
    """
    path = database_path(url_or_path)
    await asyncio.to_thread(_check_prepared if attach else prepare, path, busy_timeout_ms)
    writer = Writer(path, busy_timeout_ms=busy_timeout_ms)
    reader = await connect_reader(path, busy_timeout_ms)
    try:
        await writer.start()
        repo = SqliteRepository(path, reader, writer, spool_path(path, spool_dir))
        if attach:
            yield repo
            return
        # In the background: a database that is slow to take writes must not delay the first call.
        repo.recovery = asyncio.create_task(recovery.recover(repo, keep_transcripts), name="recover")
        draining = asyncio.create_task(recovery.drain(repo, repo.spooled), name="spool-drainer")
        every_s = (sweep or recovery.SWEEP).total_seconds()
        sweeping = asyncio.create_task(recovery.sweep(repo, every_s), name="stale-sweep")
        try:
            yield repo
        finally:
            await recovery.stop(sweeping)
            await recovery.stop(draining)
            await repo.recovery
    finally:
        await reader.close()
        await writer.close()
