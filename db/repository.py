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
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from db import attempts, calls, migrations, privacy, recovery, spool, stale
from db.attempts import Outcome
from db.backend import Repository as Store
from db.clock import to_iso, utcnow, utcnow_iso
from db.connection import BUSY_TIMEOUT_MS, Writer, connect_reader, database_path, prepare
from db.errors import DatabaseUnavailable, NotADatabase, NotFound
from db.models import CallSnapshot, CustomerMemory, ErasureRequest, PastOrder
from db.owner import current_owner
from db.pg.safe_url import is_postgres_url
from db.reports import open_read_only
from db.spool import Appender, ReplayResult, in_spool_thread, spool_path

log = logging.getLogger("memory_agent.db")

_T = TypeVar("_T")


class Repository:
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
        found = calls.profiles_from_rows(await self.read(calls.RECALL_SQL, (identity,)))
        return found[0] if found else None

    async def household(self, caller: str) -> tuple[CustomerMemory, ...]:
        """Every profile that answers on a number (or identity): one indexed statement."""
        return calls.profiles_from_rows(await self.read(calls.HOUSEHOLD_SQL, (caller,)))

    async def past_orders(self, identity: str, limit: int) -> list[PastOrder]:
        """The profile's last ``limit`` placed orders with their lines, newest first."""
        return calls.past_orders_from_rows(await self.read(calls.PAST_ORDERS_SQL, (identity, limit)))

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
        """Close as abandoned the open calls (of one caller, or all) whose process is gone."""
        return await recovery.close_stale_calls(self, identity=identity, lease=lease)

    async def replay_spool(self) -> ReplayResult:
        return await recovery.replay_spool(self)

    async def erased_since(self, snap: CallSnapshot) -> bool:
        query = await in_spool_thread(privacy.erased_since_query, self.audit_key, snap)
        return query is not None and (await self.read(*query))[0][0] > 0

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
        if drop_spooled:
            async with self.replaying:  # no replay of this process writes a snapshot the erasure drops
                counts = await self._erase(
                    identity, name=name, exact=exact, dry_run=dry_run, drop_spooled=True, on_call=online
                )
        else:  # the spool's replay, which holds ``replaying`` already
            counts = await self._erase(
                identity, name=name, exact=exact, dry_run=dry_run, drop_spooled=False, on_call=online
            )
        log_emptied = dry_run or await self.writer.checkpoint(mode="TRUNCATE")
        return Erasure(counts=counts, log_emptied=log_emptied)

    async def _erase(
        self, identity: str, *, name: str | None, exact: bool, dry_run: bool, drop_spooled: bool, on_call: bool
    ) -> dict[str, int]:
        await asyncio.to_thread(self.audit_key.subject, identity)  # the key exists before the transaction
        found = await self.writer.run(
            privacy.forget, identity, name, exact, dry_run, self.audit_key.subject, utcnow_iso(), on_call, forced=True
        )
        keys = {identity, *found["keys"]}
        needles = [*keys, *found["names"]]
        spooled = 0
        if drop_spooled:
            spooled = await in_spool_thread(
                spool.forget, self.spool_file, keys, needles, households=not exact, dry_run=dry_run
            )
        return {**found["counts"], "spool_lines": spooled}

    async def export_caller(self, identity: str) -> dict[str, Any]:
        """Everything held about the profiles on ``identity`` and its calls where no name was given, as plain
        data (for a caller's access request)."""
        return await asyncio.to_thread(_read_only, self.path, privacy.export_caller, identity)

    async def purge_transcripts(self, *, older_than: timedelta, batch: int = 500) -> dict[str, int]:
        """Remove transcripts and free-text comments older than ``older_than``; orders and ratings stay."""
        cutoff = to_iso(utcnow() - older_than)
        return await recovery.purge_in_batches(lambda: self.writer.run(privacy.purge, cutoff, batch), batch)


@dataclass(frozen=True)
class Erasure:
    """What ``forget`` removed (or would remove), by table; whether the write-ahead log was emptied at once."""

    counts: dict[str, int]
    log_emptied: bool


async def count_erasure(
    url_or_path: str | Path, identity: str, *, name: str | None = None, spool_dir: str | Path | None = None
) -> Erasure:
    """What ``forget`` would erase, by reading only: no database, key, lock or spool file is created or
    changed, so a snapshot still in the spool is counted as its line rather than replayed first."""
    if is_postgres_url(url_or_path):
        from db.pg.repository import count_erasure as count_on_postgres

        return await count_on_postgres(str(url_or_path), identity, name=name, spool_dir=spool_dir)
    path = database_path(url_or_path)

    def count() -> dict[str, Any]:
        conn = open_read_only(path)
        try:
            return privacy.forget(conn, identity, name, False, True, lambda key: "", "")
        finally:
            conn.close()

    found = await asyncio.to_thread(count)
    return await counted_with_spool(found, identity, spool_path(path, spool_dir))


async def counted_with_spool(found: dict[str, Any], identity: str, spool_file: Path) -> Erasure:
    """A dry run's counts with the spooled lines an erasure would drop."""
    keys = {identity, *found["keys"]}
    spooled = await asyncio.to_thread(
        spool.forget, spool_file, keys, [*keys, *found["names"]], households=True, dry_run=True
    )
    return Erasure(counts={**found["counts"], "spool_lines": spooled}, log_emptied=True)


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
        version = migrations.schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(f"{path} is not a usable database ({exc})") from None
    except NotADatabase as exc:
        raise NotADatabase(f"{path}: {exc}") from None
    finally:
        conn.close()
    if version != migrations.LATEST_VERSION:
        raise NotADatabase(f"{path} is at schema version {version}, not {migrations.LATEST_VERSION}: not migrated yet")


def _owned(snap: CallSnapshot) -> CallSnapshot:
    """The snapshot marked with the process running the call, unless it already is (a replay)."""
    if snap.owner_pid is not None:
        return snap
    owner = current_owner()
    return snap.model_copy(update={"owner_host": owner.host, "owner_pid": owner.pid, "owner_started": owner.started})


async def prepare_database(url_or_path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Create and migrate the database ``url_or_path`` names, and open nothing: ``NotADatabase``,
    ``SchemaTooNew`` or ``DatabaseUnavailable`` in one line if it cannot be used."""
    if is_postgres_url(url_or_path):
        from db.pg.repository import prepare_postgres

        await prepare_postgres(str(url_or_path))
        return
    await asyncio.to_thread(prepare, database_path(url_or_path), busy_timeout_ms)


@asynccontextmanager
async def open_repository(
    url_or_path: str | Path,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    spool_dir: str | Path | None = None,
    keep_transcripts: timedelta | None = None,
    host_id: str | None = None,
    lease: timedelta | None = None,
    erasure_key_file: str | Path | None = None,
    sweep: timedelta | None = None,
    attach: bool = False,
) -> AsyncIterator[Store]:
    """Open the database ``url_or_path`` names and yield its repository: a ``postgresql://`` (or
    ``postgres://``) URL opens PostgreSQL (``db.pg``), anything else a SQLite file.

    ``attach``: only the connections, to a database another process prepared and looks after (migrated,
    its spool replayed and drained, stale calls closed, retention applied): what a call's process needs.

    ``host_id``, ``lease`` and ``erasure_key_file`` are PostgreSQL's: this process's host (default: the
    hostname), how long a host's heartbeat stands for its open calls (default 30 s), and the key of the
    erasure audit's hashes (default: in the spool folder; SQLite keeps its key beside the file).
    ``sweep``: how often the open database is searched for calls whose owner is gone (on PostgreSQL,
    whose lease ran out; default: the lease there, ``recovery.SWEEP`` on SQLite).
    ``busy_timeout_ms``: how long a statement waits for the database to take it (SQLite's busy timeout;
    on PostgreSQL, the wait for a pooled connection) before the journal spools.
    """
    if is_postgres_url(url_or_path):
        from db.pg.repository import open_postgres

        async with open_postgres(
            str(url_or_path),
            spool_dir=spool_dir,
            keep_transcripts=keep_transcripts,
            host_id=host_id,
            lease=lease,
            erasure_key_file=erasure_key_file,
            sweep=sweep,
            attach=attach,
            busy_timeout_ms=busy_timeout_ms,
        ) as pg:
            yield pg
        return
    async with open_sqlite_repository(
        url_or_path,
        busy_timeout_ms=busy_timeout_ms,
        spool_dir=spool_dir,
        keep_transcripts=keep_transcripts,
        attach=attach,
        sweep=sweep,
    ) as lite:
        yield lite


@asynccontextmanager
async def open_sqlite_repository(
    url_or_path: str | Path,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    spool_dir: str | Path | None = None,
    keep_transcripts: timedelta | None = None,
    attach: bool = False,
    sweep: timedelta | None = None,
) -> AsyncIterator[Repository]:
    """Open the SQLite database and yield the repository.

    Creates and migrates it; then, in the background (``repo.recovery``), replays the snapshots
    spooled while it refused writes, closes the calls left open by processes that died, and (with
    ``keep_transcripts``) removes transcripts and comments older than that; while open, it drains the
    spool and closes calls left by dead processes every ``sweep``. A
    database that still refuses writes does not stop the product from starting. (Reports open
    it read-only with ``db.reports.open_read_only``.)

    ``attach``: the connections only, to a file another process prepared (see ``open_repository``);
    ``NotADatabase`` if it is missing or not migrated.
    """
    path = database_path(url_or_path)
    await asyncio.to_thread(_check_prepared if attach else prepare, path, busy_timeout_ms)
    writer = Writer(path, busy_timeout_ms=busy_timeout_ms)
    reader = await connect_reader(path, busy_timeout_ms)
    try:
        await writer.start()
        repo = Repository(path, reader, writer, spool_path(path, spool_dir))
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
