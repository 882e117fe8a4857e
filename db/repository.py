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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiosqlite

from db import calls, recovery, stale
from db.clock import utcnow_iso
from db.connection import BUSY_TIMEOUT_MS, Writer, connect_reader, database_path, prepare
from db.errors import DatabaseUnavailable, NotFound, RepositoryError
from db.models import CallSnapshot, CustomerMemory
from db.owner import current_owner
from db.spool import ReplayResult, append, spool_path

log = logging.getLogger("memory_agent.db")


class Repository:
    """Reads and writes of customers and their calls."""

    def __init__(self, path: str, reader: aiosqlite.Connection, writer: Writer, spool_file: Path) -> None:
        self.path = path
        self.reader = reader
        self.writer = writer
        self.spool_file = spool_file
        self.recovery: asyncio.Task[None] | None = None

    @property
    def write_counts(self) -> Counter[str]:
        """Committed write transactions so far, as ``forced`` (on disk at once) and ``relaxed``."""
        return self.writer.counts

    # -- reads ------------------------------------------------------------------------------

    async def recall(self, identity: str) -> CustomerMemory | None:
        """What we know of a caller: one indexed statement, whatever their history."""
        return calls.memory_from_rows(await self.read(calls.RECALL_SQL, (identity,)))

    async def customer(self, identity: str) -> dict[str, object] | None:
        """The customer row for an identity, as a dict."""
        rows = await self.read("SELECT * FROM customers WHERE participant_identity = ?", (identity,))
        return dict(rows[0]) if rows else None

    async def call_summary(self, call_id: str) -> dict[str, object]:
        """One call at a glance: its order, items, feedback and transcript size."""
        rows = await self.read(calls.CALL_SUMMARY_SQL, (call_id,))
        if not rows:
            raise NotFound(f"no call {call_id!r}")
        return dict(rows[0])

    async def read(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
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
        never loses the rest of the call.
        """
        snap = _owned(snap)
        try:
            await self.writer.run(calls.write_call, snap, utcnow_iso(), False, forced=forced)
            return
        except DatabaseUnavailable:
            raise
        except (RepositoryError, ValueError, TypeError, OverflowError) as exc:
            first_error = exc
        skipped = await self.writer.run(calls.write_call, snap, utcnow_iso(), True, forced=forced)
        log.error(
            "call %s written without %d part(s) that could not be stored (%s)",
            snap.call_id,
            len(skipped),
            "; ".join(skipped[:3]) or first_error,
        )

    async def spool(self, snap: CallSnapshot) -> Path:
        """Keep ``snap`` in the spool (fsynced) for the next start to write; raises ``OSError`` if it cannot."""
        await asyncio.to_thread(append, self.spool_file, _owned(snap))
        return self.spool_file

    async def close_stale_calls(self, *, identity: str | None = None, lease: timedelta = stale.LEASE) -> list[str]:
        """Close as abandoned the open calls (of one caller, or all) whose process is gone."""
        return await recovery.close_stale_calls(self, identity=identity, lease=lease)

    async def replay_spool(self) -> ReplayResult:
        return await recovery.replay_spool(self)

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the main file now."""
        await self.writer.checkpoint()


def _owned(snap: CallSnapshot) -> CallSnapshot:
    """The snapshot marked with the process running the call, unless it already is (a replay)."""
    if snap.owner_pid is not None:
        return snap
    owner = current_owner()
    return snap.model_copy(update={"owner_host": owner.host, "owner_pid": owner.pid, "owner_started": owner.started})


@asynccontextmanager
async def open_repository(
    url_or_path: str | Path,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    spool_dir: str | Path | None = None,
) -> AsyncIterator[Repository]:
    """Open the database and yield the repository.

    Creates and migrates it; then, in the background (``repo.recovery``), replays the snapshots
    spooled while it refused writes and closes the calls left open by processes that died. A
    database that still refuses writes does not stop the product from starting. (Reports open
    it read-only with ``db.reports.open_read_only``.)
    """
    path = database_path(url_or_path)
    await asyncio.to_thread(prepare, path, busy_timeout_ms)
    writer = Writer(path, busy_timeout_ms=busy_timeout_ms)
    reader = await connect_reader(path, busy_timeout_ms)
    try:
        await writer.start()
        repo = Repository(path, reader, writer, spool_path(path, spool_dir))
        # In the background: a database that is slow to take writes must not delay the first call.
        repo.recovery = asyncio.create_task(recovery.recover(repo), name="recover")
        try:
            yield repo
        finally:
            await repo.recovery
    finally:
        await reader.close()
        await writer.close()
