"""The PostgreSQL repository: ``db.sqlite.repository.Repository``'s interface and behaviour on a connection pool.

Every write is one transaction on a pooled connection, its statements pipelined; caller lookups
have a connection of their own (``db.postgres.lookup``), and other reads use the pool, so no write holds
up a caller lookup. The server refusing (unreachable, shutting down, out of connections) is
``DatabaseUnavailable``, and the journal spools; the spool lives on this host (``spool_dir``, or the
current folder) and is replayed when the repository opens and, while it is open, by its drainer.

Several hosts share the database, so a PID says nothing about another host's calls: each process
renews a heartbeat in ``worker_hosts`` every few seconds, and an open call whose owner's heartbeat
is older than the lease (by the server's clock) is closed as abandoned by whichever host looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import AsyncRowFactory, RowMaker, tuple_row
from psycopg.types.string import StrDumperUnknown
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from db import attempts, privacy, recovery, spool, stale
from db.attempts import Outcome
from db.backend import Erasure, counted_with_spool
from db.clock import to_iso, utcnow, utcnow_iso
from db.errors import DatabaseUnavailable, NotADatabase, NotFound, RepositoryError
from db.owner import Owner
from db.postgres import migrate, queries
from db.postgres import privacy as pg_privacy
from db.postgres.lookup import Conn, LookupConnection
from db.safe_url import postgres_url, scrub
from db.schema.models import CallSnapshot, CustomerMemory, ErasureRequest, PastOrder
from db.spool import Appender, ReplayResult, in_spool_thread, spool_path
from db.statements import calls as statements
from db.statements import privacy as privacy_statements
from db.statements.plan import describe, run_postgres
from db.statements.sql import compiled

log = logging.getLogger("memory_agent.db")

_T = TypeVar("_T")

LEASE = timedelta(seconds=30)
CONNECT_TIMEOUT_S = 5
POOL_SIZE = 10
WRITE_ATTEMPTS = 3
# Errors after which the same transaction is tried again. psycopg gives each SQLSTATE its own class
# directly under OperationalError, so class 40's TransactionRollback does not catch its members.
TRIED_AGAIN = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.TransactionRollback)
# Heartbeat rows of hosts gone this long, with no open call left, are removed.
FORGET_HOSTS_AFTER = timedelta(days=1)
ERASURE_KEY_NAME = "memory-agent.erasure-key"


def describe_url(url: str) -> str:
    """The server and database a URL names, without its user or password."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'localhost'}:{port or 5432}/{parts.path.lstrip('/') or '(default)'}"


@cache
def _instance() -> str:
    """This process's start, made unique (a container's PID 1 starts again as PID 1)."""
    return f"{utcnow_iso()}#{secrets.token_hex(4)}"


def process_owner(host_id: str | None) -> Owner:
    """This process as the owner of its calls: the host id (default: the hostname), its PID and its start."""
    return Owner(host=host_id or socket.gethostname(), pid=os.getpid(), started=_instance())


class Row(tuple[Any, ...]):
    """A row read by position or by column name, and ``dict(row)``, as ``sqlite3.Row``."""

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _rows(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[Row]:
    names = tuple(column.name for column in cursor.description or ())
    return lambda values: Row(values, names)


class _StorableText(StrDumperUnknown):
    """Text as SQLite would keep it, except NUL, which PostgreSQL cannot store: it becomes U+FFFD."""

    def dump(self, obj: str) -> bytes:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)  # type: ignore[return-value]


async def _configure(conn: Conn) -> None:
    conn.adapters.register_dumper(str, _StorableText)


class PostgresRepository:
    """Reads and writes of customers and their calls, on PostgreSQL."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        *,
        url: str,
        where: str,
        spool_file: Path,
        owner: Owner,
        lease: timedelta,
        erasure_key_file: Path,
    ) -> None:
        self.pool = pool
        self.url = url
        self.where = where
        self.lookups = LookupConnection(self._connect)
        self.spool_file = spool_file
        self.spooler = Appender(spool_file)
        self.spooled = asyncio.Event()  # set when this process spools a snapshot
        self.replaying = asyncio.Lock()  # one replay of the spool at a time in this process
        self.owner = owner
        self.lease = lease
        self.erasure_key_file = erasure_key_file
        self.audit_key = privacy.AuditKey(erasure_key_file)
        self.recovery: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()

    async def recovered(self) -> None:
        """Wait for the recovery started at open (spool replay, stale calls, retention) to end."""
        if self.recovery is not None:
            await self.recovery

    @property
    def write_counts(self) -> Counter[str]:
        """Committed write transactions so far, as ``forced`` (synchronous commit) and ``relaxed``."""
        return self.counts

    # -- connections ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise DatabaseUnavailable(f"database {self.where} unavailable: no connection within the timeout") from None
        except TRIED_AGAIN:
            raise  # a deadlock's victim or a serialization failure: the write is tried again
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"database {self.where} unavailable: {_first_line(exc)}") from None

    async def _connect(self) -> Conn:
        """A connection of its own (outside the pool), configured as the pool's are."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database {self.where} unavailable: {scrub(_reason(exc), self.url)}") from None
        await _configure(conn)
        return conn

    async def run(
        self, body: Callable[..., Awaitable[_T]], *args: object, forced: bool = False, pipelined: bool = False
    ) -> _T:
        """``body(conn, *args)`` in one transaction; retried when the server chose it as a deadlock's victim
        or it met a connection the server had closed.

        ``pipelined``: the statements are sent without waiting for each answer (psycopg's pipeline mode),
        the commit with the last of them; ``body`` must fetch any result it reads (a row count is not
        known before), and an error may surface at a later statement than the one that caused it.
        """
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self._connection() as conn:
                    piped = pipelined and psycopg.Pipeline.is_supported()
                    async with conn.pipeline() if piped else contextlib.nullcontext(), conn.transaction():
                        if not forced:
                            await conn.execute("SET LOCAL synchronous_commit = off")
                        result = await body(conn, *args)
                self.counts["forced" if forced else "relaxed"] += 1
                return result
            except TRIED_AGAIN as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise DatabaseUnavailable(f"database write refused: {describe(exc)}") from None
                await asyncio.sleep(0.05 * attempt)
            except DatabaseUnavailable:
                # A pooled connection the server closed (a restart): one more try on a fresh one.
                if attempt >= 2 or self.pool.get_stats().get("pool_available", 0) == 0:
                    raise
            except psycopg.Error as exc:
                raise RepositoryError(f"database refused the write: {describe(exc)}") from None
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------

    async def read(self, sql: str, params: Sequence[object]) -> list[Row]:
        """Rows of one statement (``?`` placeholders, as SQLite's); errors become ``DatabaseUnavailable``."""
        try:
            async with self._connection() as conn:
                async with conn.cursor(row_factory=_rows) as cur:
                    if params:
                        await cur.execute(queries.qmark(sql), tuple(params))
                    else:
                        await cur.execute(sql)
                    return await cur.fetchall()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"database read failed: {describe(exc)}") from None

    async def _fetch(
        self, sql: str, params: Sequence[object] | Mapping[str, object], row_factory: AsyncRowFactory[Any] = _rows
    ) -> list[Any]:
        """Rows of one short statement: on the lookup connection, or through the pool while it is busy."""
        try:
            if not self.lookups.busy:
                return await self.lookups.fetch(sql, params, row_factory)
            async with self._connection() as conn:
                async with conn.cursor(row_factory=row_factory) as cur:
                    await cur.execute(sql, params)
                    return await cur.fetchall()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"database read failed: {describe(exc)}") from None

    async def recall(self, identity: str) -> CustomerMemory | None:
        """What we know of one profile: one indexed statement, whatever their history."""
        rows = await self._fetch(compiled(statements.RECALL, "postgresql"), {"identity": identity}, tuple_row)
        found = statements.profiles_from_rows(rows)
        return found[0] if found else None

    async def household(self, caller: str) -> tuple[CustomerMemory, ...]:
        """Every profile that answers on a number (or identity): one indexed statement."""
        rows = await self._fetch(compiled(statements.HOUSEHOLD, "postgresql"), {"household": caller}, tuple_row)
        return statements.profiles_from_rows(rows)

    async def past_orders(self, identity: str, limit: int) -> list[PastOrder]:
        """The profile's last ``limit`` placed orders with their lines, newest first."""
        values = {"identity": identity, "limit": limit}
        return statements.past_orders_from_rows(
            await self._fetch(compiled(statements.PAST_ORDERS, "postgresql"), values, tuple_row)
        )

    async def customer(self, identity: str) -> dict[str, object] | None:
        """The customer row for an identity, as a dict."""
        rows = await self._fetch("SELECT * FROM customers WHERE participant_identity = %s", (identity,))
        return dict(zip(rows[0].keys(), rows[0], strict=True)) if rows else None

    async def call_summary(self, call_id: str) -> dict[str, object]:
        """One call at a glance: its order, items, feedback and transcript size."""
        rows = await self._fetch(compiled(statements.CALL_SUMMARY, "postgresql"), {"call_id": call_id})
        if not rows:
            raise NotFound(f"no call {call_id!r}")
        return dict(zip(rows[0].keys(), rows[0], strict=True))

    # -- writes -----------------------------------------------------------------------------

    async def save_call(self, snap: CallSnapshot, *, forced: bool = False) -> None:
        """Write a call as ``snap`` has it, in one transaction; safe to repeat and to replay late.

        ``forced``: committed synchronously (on the server's disk) before this returns. If the write
        fails on its data rather than on the database, it is written again part by part.
        """
        snap = self._owned(snap)

        async def write(careful: bool) -> list[str]:
            # The whole call pipelined; part by part (each in its savepoint) without.
            return await self.run(
                _write_call,
                snap,
                utcnow_iso(),
                careful,
                self.audit_key,
                forced=forced,
                pipelined=not careful,
            )

        await recovery.save_whole_or_in_parts(snap.call_id, write)

    async def spool(self, snap: CallSnapshot) -> Path:
        """Keep ``snap`` in this host's spool (fsynced) for the next start to write; ``OSError`` if it cannot."""
        await self.spooler.append(self._owned(snap))
        self.spooled.set()  # the drainer writes it as soon as the database takes it
        return self.spool_file

    async def spool_erasure(self, request: ErasureRequest) -> Path:
        """Keep an erasure the database would not take in this host's spool, for its replay to carry out."""
        await self.spooler.append(request)
        self.spooled.set()
        return self.spool_file

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints by itself."""

    def _owned(self, snap: CallSnapshot) -> CallSnapshot:
        if snap.owner_pid is not None:
            return snap
        me = self.owner
        return snap.model_copy(update={"owner_host": me.host, "owner_pid": me.pid, "owner_started": me.started})

    # -- recovery ---------------------------------------------------------------------------

    async def replay_spool(self) -> ReplayResult:
        """Write the snapshots this host spooled while the database refused them; each exactly once."""
        return await recovery.replay_spool(self)

    async def record_identity_attempt(self, caller: str, *, call_id: str, outcome: Outcome) -> None:
        subject = await asyncio.to_thread(self.audit_key.subject, caller)
        await self.run(_execute, attempts.INSERT_SQL.replace("?", "%s"), (utcnow_iso(), subject, call_id, outcome))

    async def identity_attempts(self, caller: str, *, since: str) -> int:
        if await asyncio.to_thread(self.audit_key.existing) is None:  # no key yet: nothing was ever recorded
            return 0
        subject = await asyncio.to_thread(self.audit_key.subject, caller)
        return int((await self.read(attempts.COUNT_SQL, (subject, since)))[0][0])

    async def erased_since(self, snap: CallSnapshot) -> bool:
        values = await in_spool_thread(privacy.erased_since_values, self.audit_key, snap)
        return (
            values is not None
            and (await self._fetch(compiled(statements.ERASED_SINCE, "postgresql"), values))[0][0] > 0
        )

    async def close_stale_calls(self, *, identity: str | None = None, lease: timedelta = stale.LEASE) -> list[str]:
        """Close as abandoned the open calls (of one caller, or all) whose owner's heartbeat ran out.

        A call whose owner never had a heartbeat here (one copied from SQLite) is closed once nothing
        has happened on it for ``lease``, as SQLite closes another machine's calls.
        """
        seconds = self.lease.total_seconds()
        if identity is None:
            rows = await self._fetch(queries.OPEN_CALLS_SQL, (seconds,))
        else:
            rows = await self._fetch(queries.OPEN_CALLS_OF_CALLER_SQL, (seconds, identity))
        found = find_stale(rows, me=self.owner, now_iso=to_iso(utcnow() - lease), lease=lease)
        if found:
            closed = await self.run(_close_calls, found, self.spool_file, utcnow_iso())
        else:
            closed = []
        for call_id in closed:
            reason = next(c.reason for c in found if c.call_id == call_id)
            log.warning("call %s closed as abandoned: %s", call_id, reason)
        if identity is None:
            await self.run(_forget_gone_hosts)
        return closed

    async def heartbeat(self) -> None:
        """Tell the other hosts this process is alive (and so are its calls)."""
        await self.run(_beat, self.owner)

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
        one transaction; then clean the tables' pages and indexes and drop their snapshots from this
        host's spool (unless ``drop_spooled`` is False: see ``db.sqlite.repository.Repository.forget``). Calls
        still running, on any host, never write them back. ``dry_run`` only counts. ``online``: clean
        without locking the tables (see ``pg_privacy.clean_after_erasure``), for an erasure asked for
        during a call while other calls write (its audit row says so).
        """

        async def erase_rows() -> dict[str, Any]:
            await asyncio.to_thread(self.audit_key.load)
            erasure = privacy_statements.forget(
                identity, name, exact, dry_run, self.audit_key.subject, utcnow_iso(), online
            )
            return await self.run(pg_privacy.forget, identity, exact, erasure, forced=True)

        counts = await recovery.erase(
            self, erase_rows, identity, exact=exact, dry_run=dry_run, drop_spooled=drop_spooled
        )
        vacuumed = dry_run or await self._vacuum(pg_privacy.ERASED, online=online)
        return Erasure(counts=counts, log_emptied=vacuumed)

    async def _vacuum(self, tables: Sequence[str], *, online: bool) -> bool:
        """Clear the erased rows out of the tables' pages and indexes (``pg_privacy.clean_after_erasure``),
        outside any transaction; False if that was not done in full (autovacuum then does part of it later)."""
        try:
            async with self._connection() as conn:
                rewritten = await pg_privacy.clean_after_erasure(conn, tables, online=online)
            if not rewritten and not online:
                log.warning("a table was busy: cleaned online, its freed space keeps erased bytes until reused")
            return rewritten
        except (psycopg.Error, RepositoryError) as exc:
            log.warning("cleaning the pages after an erasure postponed: %s", describe(exc))
            return False

    async def export_caller(self, identity: str) -> dict[str, Any]:
        """Everything held about the profiles on ``identity``, as plain data (for a caller's access request)."""
        try:
            async with self._connection() as conn:
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    return await pg_privacy.export_caller(conn, identity)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"database read failed: {describe(exc)}") from None

    async def purge_transcripts(self, *, older_than: timedelta, batch: int = 500) -> dict[str, int]:
        """Remove transcripts and free-text comments older than ``older_than``; orders and ratings stay."""
        cutoff = to_iso(utcnow() - older_than)
        return await recovery.purge_in_batches(lambda: self.run(pg_privacy.purge, cutoff, batch), batch)


@dataclass(frozen=True)
class _OpenCall:
    call_id: str
    host: str | None
    pid: int | None
    started: str | None
    last_seen: str
    known: bool
    expired: bool


def find_stale(rows: Sequence[Sequence[Any]], *, me: Owner, now_iso: str, lease: timedelta) -> list[stale.StaleCall]:
    """The open calls among ``rows`` (from ``OPEN_CALLS_SQL``) nobody runs any more.

    ``now_iso``: the moment ``lease`` ago, before which a call of an owner without a heartbeat is stale.
    """
    found = []
    for row in rows:
        call = _OpenCall(*row)
        if (call.host, call.pid, call.started) == (me.host, me.pid, me.started):
            continue
        if call.known:
            if call.expired:
                owner = Owner(host=call.host or "", pid=int(call.pid or 0), started=call.started)
                found.append(
                    stale.StaleCall(call.call_id, call.last_seen, stale.REASON_DEAD.format(owner=owner.describe()))
                )
        elif call.last_seen < now_iso:
            hours = lease.total_seconds() / 3600
            found.append(stale.StaleCall(call.call_id, call.last_seen, stale.REASON_LEASE.format(hours=hours)))
    return found


async def _write_call(db: Conn, snap: CallSnapshot, now: str, careful: bool, audit_key: privacy.AuditKey) -> list[str]:
    """See ``db.statements.calls.write_call``: the number's lock and the erasure check come first."""
    erased = privacy.erased_since_values(audit_key, snap)
    return await run_postgres(db, statements.write_call(snap, now, careful, erased))


async def _close_calls(db: Conn, found: list[stale.StaleCall], spool_file: Path, now: str) -> list[str]:
    """Close the stale calls that are not waiting in this host's spool to be replayed."""
    return await run_postgres(db, statements.close_calls(found, spool.call_ids(spool_file), now))


async def _beat(db: Conn, owner: Owner) -> None:
    await db.execute(
        "INSERT INTO worker_hosts (host, pid, started) VALUES (%s, %s, %s)"
        " ON CONFLICT (host, pid, started) DO UPDATE SET heartbeat_at = now()",
        (owner.host, owner.pid, owner.started),
    )


async def _retire(db: Conn, owner: Owner) -> None:
    """A process closing cleanly drops its heartbeat, unless a call of its is still open (then it runs out)."""
    await db.execute(
        "DELETE FROM worker_hosts AS h WHERE host = %s AND pid = %s AND started = %s AND NOT EXISTS"
        " (SELECT 1 FROM calls WHERE owner_host = h.host AND owner_pid = h.pid AND owner_started = h.started"
        "  AND ended_at IS NULL)",
        (owner.host, owner.pid, owner.started),
    )


async def _forget_gone_hosts(db: Conn) -> None:
    await db.execute(
        "DELETE FROM worker_hosts AS h WHERE heartbeat_at < now() - make_interval(secs => %s) AND NOT EXISTS"
        " (SELECT 1 FROM calls WHERE owner_host = h.host AND owner_pid = h.pid AND owner_started = h.started"
        "  AND ended_at IS NULL)",
        (FORGET_HOSTS_AFTER.total_seconds(),),
    )


async def _keep_alive(repo: PostgresRepository, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await repo.heartbeat()
        except RepositoryError as exc:
            log.warning("heartbeat not renewed (other hosts close this one's calls after %s): %s", repo.lease, exc)


async def _execute(conn: Conn, sql: str, params: Sequence[object]) -> None:
    await conn.execute(sql, params)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def postgres_spool_path(url: str, spool_dir: str | Path | None) -> Path:
    """This host's spool for the database ``url`` names: in ``spool_dir``, or the current folder."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"postgres-{describe_url(url)}")
    return spool_path(name, Path(spool_dir) if spool_dir is not None else Path.cwd())


async def count_erasure(
    url: str, identity: str, *, name: str | None = None, spool_dir: str | Path | None = None
) -> Erasure:
    """See ``db.open.count_erasure``: the counts from one read-only transaction, nothing written."""
    url = postgres_url(url)
    where = describe_url(url)
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            await conn.set_read_only(True)
            cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            found = await cur.fetchone()
            if not found or not found[0]:
                raise NotADatabase(f"{where} is not a memory-agent database (no schema_migrations table)")
            dry_run = privacy_statements.forget(identity, name, False, True, lambda key: "", "")
            counted = await pg_privacy.forget(conn, identity, False, dry_run)
            await conn.rollback()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database {where}: {scrub(_reason(exc), url)}") from None
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"database read failed: {describe(exc)}") from None
    return await counted_with_spool(counted, identity, postgres_spool_path(url, spool_dir))


async def _migrate(url: str, where: str) -> None:
    try:
        async with await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        ) as conn:
            await migrate.migrate(conn)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database {where}: {scrub(_reason(exc), url)}") from None
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"database {where} refused the migration: {scrub(describe(exc), url)}") from None


async def prepare_postgres(url: str) -> None:
    """Migrate the database at ``url``; see ``db.prepare_database``."""
    url = postgres_url(url)
    await _migrate(url, describe_url(url))


def _reason(exc: psycopg.OperationalError) -> str:
    """libpq's reason, from its last line (the earlier ones repeat the address)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.split(" failed: ")[-1]


@contextlib.asynccontextmanager
async def open_postgres(
    url: str,
    *,
    spool_dir: str | Path | None = None,
    keep_transcripts: timedelta | None = None,
    host_id: str | None = None,
    lease: timedelta | None = None,
    erasure_key_file: str | Path | None = None,
    pool_size: int = POOL_SIZE,
    sweep: timedelta | None = None,
    attach: bool = False,
    busy_timeout_ms: int = CONNECT_TIMEOUT_S * 1000,
) -> AsyncIterator[PostgresRepository]:
    """Open the database at ``url`` (migrating it) and yield the repository; see ``db.open_repository``.

    Unreachable at open: ``DatabaseUnavailable``, in one line without the URL's password.
    While open, it looks every ``sweep`` (default: the lease) for calls whose owner's lease ran out,
    and closes them as abandoned: a dead host's calls do not wait for a host to start.

    ``attach``: no migration, recovery, drainer or sweep (another process of the host runs them): the
    pool, the lookup connection and this process's heartbeat, which stands for the calls it runs.
    ``busy_timeout_ms``: how long a read or write waits for a connection of the pool (while the server
    refuses them, or all are in use) before it gives up with ``DatabaseUnavailable``.
    """
    url = postgres_url(url)
    where = describe_url(url)
    if not attach:
        await _migrate(url, where)
    lease = lease or LEASE
    spool_file = postgres_spool_path(url, spool_dir)
    key_file = Path(erasure_key_file) if erasure_key_file is not None else spool_file.parent / ERASURE_KEY_NAME
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        configure=_configure,
        timeout=busy_timeout_ms / 1000,
        open=False,
        name="memory-agent",
    )
    await pool.open()
    repo = PostgresRepository(
        pool,
        url=url,
        where=where,
        spool_file=spool_file,
        owner=process_owner(host_id),
        lease=lease,
        erasure_key_file=key_file,
    )
    beating: asyncio.Task[None] | None = None
    try:
        # The erasure key is read (or made) now, so that no write of a call waits for the disk to check it.
        await asyncio.to_thread(repo.audit_key.load)
        await repo.lookups.open()
        await repo.heartbeat()
        beating = asyncio.create_task(_keep_alive(repo, min(5.0, lease.total_seconds() / 3)), name="heartbeat")
        if attach:
            yield repo
            return
        repo.recovery = asyncio.create_task(recovery.recover(repo, keep_transcripts), name="recover")
        draining = asyncio.create_task(recovery.drain(repo, repo.spooled), name="spool-drainer")
        sweeping = asyncio.create_task(recovery.sweep(repo, (sweep or lease).total_seconds()), name="stale-sweep")
        try:
            yield repo
        finally:
            await recovery.stop(sweeping)
            await recovery.stop(draining)
            await repo.recovery
    finally:
        if beating is not None:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        with contextlib.suppress(RepositoryError):
            await repo.run(_retire, repo.owner)
        await repo.lookups.close()
        await pool.close()
