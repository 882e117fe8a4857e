"""The repository: every read and write the product makes, over one aiosqlite connection.

Hot paths (the caller lookup, the end-of-call write) are hand-written SQL: one statement for
the lookup, one short IMMEDIATE transaction for each write. The SQLModel models in
``db.models`` describe the same schema for tools and tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import aiosqlite

from db import migrations, spool, stale
from db.clock import utcnow, utcnow_iso
from db.errors import DatabaseUnavailable, NotADatabase, NotFound, RepositoryError
from db.owner import Owner, current_owner
from db.records import (
    CallRecord,
    CustomerMemory,
    FeedbackRecord,
    MessageRecord,
    OrderRecord,
    PastItem,
)
from db.writer_lock import WriterLock, WriterLockTimeout

log = logging.getLogger("memory_agent.db")

_T = TypeVar("_T")

BUSY_TIMEOUT_MS = 5_000
WRITE_ATTEMPTS = 3
# LiveKit gives a job about 10 s after a worker's shutdown begins: spool well before that.
FINALIZE_WITHIN_S = 5.0

_RECALL_SQL = """
SELECT c.id, c.name, c.email, c.call_count, c.order_count, c.lifetime_spend_cents,
       c.last_rating, c.last_feedback_comment,
       o.created_at, o.total_cents, i.menu_item, i.name, i.quantity, i.modifications
FROM customers AS c
LEFT JOIN orders AS o ON o.id = c.last_order_id
LEFT JOIN order_items AS i ON i.order_id = o.id
WHERE c.participant_identity = ?
ORDER BY i.position
"""


def database_path(url_or_path: str | Path) -> str:
    """Accept a plain path or a ``sqlite://`` URL and return the file path."""
    text = str(url_or_path)
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    if "://" in text:
        raise NotADatabase(f"unsupported database URL {text!r}: use a path or sqlite:///path")
    return text


class Repository:
    """Reads and writes of customers, calls, orders, feedback and messages."""

    def __init__(self, conn: aiosqlite.Connection, path: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self._writers = WriterLock(path, timeout_s=busy_timeout_ms / 1000)
        self.recovery: asyncio.Task[None] | None = None

    # -- reads ------------------------------------------------------------------

    async def recall(self, identity: str) -> CustomerMemory | None:
        """What we know of a caller: one indexed statement, whatever their history, in one thread hop."""
        try:
            return await run_on_connection_thread(self._conn, _read_memory, identity)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"caller lookup failed: {exc}") from None

    async def customer(self, identity: str) -> dict[str, object] | None:
        """The customer row for an identity, as a dict."""
        rows = await self._read("SELECT * FROM customers WHERE participant_identity = ?", (identity,))
        return dict(rows[0]) if rows else None

    async def call_summary(self, call_id: str) -> dict[str, object]:
        """One call at a glance: its order, items, feedback and transcript size."""
        rows = await self._read(
            "SELECT c.end_reason, o.id AS order_id, o.status, o.total_cents,"
            " (SELECT group_concat(i.quantity || 'x ' || i.name, ', ') FROM"
            "   (SELECT * FROM order_items WHERE order_id = o.id ORDER BY position) AS i) AS items,"
            " (SELECT rating FROM feedback WHERE call_id = c.id) AS rating,"
            " (SELECT count(*) FROM messages WHERE call_id = c.id) AS messages"
            " FROM calls AS c LEFT JOIN orders AS o ON o.call_id = c.id WHERE c.id = ?",
            (call_id,),
        )
        if not rows:
            raise NotFound(f"no call {call_id!r}")
        return dict(rows[0])

    async def _read(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"database read failed: {exc}") from None

    # -- writes -----------------------------------------------------------------

    async def open_call(self, *, call_id: str, identity: str | None, started_at: str) -> int | None:
        """Record that a call began; returns the caller's customer id (None when anonymous).

        The caller's earlier calls left open by a dead process are closed first, so they never
        stand in the way of this one.
        """
        if identity is not None:
            await self.close_stale_calls(identity=identity)
        return await self._transaction(_open_call, call_id, identity, started_at, current_owner())

    async def save_caller_name(self, *, call_id: str, customer_id: int | None, name: str) -> None:
        await self._transaction(_write_name, call_id, customer_id, name, utcnow_iso())

    async def save_email(self, *, customer_id: int | None, email: str) -> None:
        if customer_id is not None:
            await self._transaction(_write_email, customer_id, email)

    async def save_order(self, *, call_id: str, customer_id: int | None, order: OrderRecord) -> int | None:
        """Write the call's order as it is now; a placed order is final."""
        now = utcnow_iso()
        return await self._transaction(_write_order, call_id, customer_id, order, now, now)

    async def save_feedback(self, *, call_id: str, customer_id: int | None, feedback: FeedbackRecord) -> None:
        await self._transaction(_write_feedback, call_id, customer_id, feedback, utcnow_iso())

    async def finalize_call(self, record: CallRecord) -> None:
        """Write everything a finished call leaves, in one transaction; safe to repeat."""
        await self._transaction(_write_call, record)

    async def finalize_or_spool(self, record: CallRecord, *, within_s: float = FINALIZE_WITHIN_S) -> bool:
        """Finalize the call, or, if the database refuses or takes longer than ``within_s``, spool
        its record for the next start (a job being shut down has only seconds left to live).

        Returns True when written, False when spooled; raises only if the spool fails too. A write
        given up on may still land; the replay is idempotent, so nothing is written twice.
        """
        try:
            await asyncio.wait_for(self.finalize_call(record), timeout=within_s)
            return True
        except TimeoutError:
            reason: Exception = DatabaseUnavailable(f"not written within {within_s:g} s")
        except RepositoryError as exc:
            reason = exc
        path = spool.spool_path(self.path)
        try:
            await asyncio.to_thread(spool.append, path, record)
        except OSError as exc:
            log.critical("call %s could not be written (%s) nor spooled (%s)", record.call_id, reason, exc)
            raise DatabaseUnavailable(f"call {record.call_id} neither written nor spooled: {exc}") from None
        log.warning("call %s spooled to %s: %s", record.call_id, path.name, reason)
        return False

    async def replay_spool(self) -> spool.ReplayResult:
        """Write the calls spooled while the database refused them; each exactly once."""
        result = await spool.replay(spool.spool_path(self.path), self.finalize_call)
        if result.written:
            log.info("replayed %d spooled call(s) into the database", result.written)
        if result.kept:
            log.warning(
                "%d spooled call(s) still refused, kept for the next start: %s",
                result.kept,
                "; ".join(result.errors[:3]),
            )
        if result.rejected:
            log.error(
                "%d unreadable spool line(s) set aside in %s",
                result.rejected,
                spool.spool_path(self.path).name.replace(spool.SUFFIX, spool.REJECTED_SUFFIX),
            )
        return result

    async def close_stale_calls(self, *, identity: str | None = None, lease: timedelta = stale.LEASE) -> list[str]:
        """Close as abandoned the open calls (of one caller, or all) whose process is gone.

        Returns the ids closed. Calls waiting in the spool are left for its replay.
        """
        params: tuple[str, ...] = ()
        if identity is None:
            sql = stale.OPEN_CALLS_SQL
        else:
            sql, params = stale.OPEN_CALLS_OF_CALLER_SQL, (identity,)
        rows = await self._read(sql, params)
        found = stale.find_stale((tuple(row) for row in rows), now=utcnow(), lease=lease)
        if not found:
            return []
        closed = await self._transaction(_close_calls, found, spool.spool_path(self.path))
        for call_id in closed:
            log.warning(
                "call %s closed as abandoned: %s", call_id, next(c.reason for c in found if c.call_id == call_id)
            )
        return closed

    # -- plumbing ---------------------------------------------------------------

    async def _transaction(self, body: Callable[..., _T], *args: object) -> _T:
        """Run ``body(db, *args)`` as one IMMEDIATE transaction in a single hop to the database thread.

        Nothing is awaited while the write lock is held, so a transaction costs one thread hop
        (not one per statement) and is as short as SQLite allows; a busy database is retried
        within a bound (``WRITE_ATTEMPTS`` tries, each waiting up to the busy timeout).
        """
        async with self._write_lock:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    return await run_on_connection_thread(
                        self._conn, _immediate_transaction, self._writers, body, *args
                    )
                except _Busy as exc:
                    if attempt == WRITE_ATTEMPTS:
                        raise DatabaseUnavailable(f"database write refused: {exc}") from None
                    await asyncio.sleep(0.05 * attempt)
                except sqlite3.OperationalError as exc:
                    raise DatabaseUnavailable(f"database write refused: {exc}") from None
                except sqlite3.Error as exc:
                    raise RepositoryError(f"database refused the write: {exc}") from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._conn.close()


async def run_on_connection_thread(conn: aiosqlite.Connection, fn: Callable[..., _T], *args: object) -> _T:
    """Call ``fn(sqlite3_connection, *args)`` on aiosqlite's own thread: one hop for many statements.

    aiosqlite has no public way to run a function on its thread; this is the one place that uses
    its private ``_execute`` and ``_conn`` (stable from 0.20 to 0.22; pinned in pyproject.toml).
    """
    return await conn._execute(lambda: fn(conn._conn, *args))


class _Busy(Exception):
    """BEGIN IMMEDIATE found the write lock taken past the busy timeout: worth retrying."""


def _immediate_transaction(db: sqlite3.Connection, writers: WriterLock, body: Callable[..., _T], *args: object) -> _T:
    _begin(db, writers)
    try:
        result = body(db, *args)
        db.execute("COMMIT")
    except BaseException:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        finally:
            writers.release()
        raise
    writers.release()
    return result


def _begin(db: sqlite3.Connection, writers: WriterLock) -> None:
    """Queue behind other writers, then take SQLite's write lock; _Busy if either is held too long."""
    try:
        writers.acquire()
    except WriterLockTimeout as exc:
        raise _Busy(str(exc)) from None
    try:
        db.execute("BEGIN IMMEDIATE")
    except BaseException as exc:
        writers.release()
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            raise _Busy(str(exc)) from None
        raise


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


# The bodies below run on the database thread, inside a transaction the caller opened.


def _read_memory(db: sqlite3.Connection, identity: str) -> CustomerMemory | None:
    cursor = db.cursor()
    cursor.row_factory = None
    rows = cursor.execute(_RECALL_SQL, (identity,)).fetchall()
    if not rows:
        return None
    first = rows[0]
    items = tuple(
        PastItem(
            menu_item_id=row[10],
            name=row[11],
            quantity=row[12],
            modifications=[] if row[13] == "[]" else json.loads(row[13]),
        )
        for row in rows
        if row[10] is not None
    )
    return CustomerMemory(
        customer_id=first[0],
        name=first[1],
        email=first[2],
        call_count=first[3],
        order_count=first[4],
        lifetime_spend_cents=first[5],
        last_rating=first[6],
        last_feedback_comment=first[7],
        last_order_at=first[8],
        last_order_total_cents=first[9],
        last_order_items=items,
    )


def _open_call(db: sqlite3.Connection, call_id: str, identity: str | None, started_at: str, owner: Owner) -> int | None:
    customer_id = None
    if identity is not None:
        customer_id = _upsert_customer(db, identity, started_at)
    inserted = db.execute(
        "INSERT INTO calls (id, customer_id, started_at, owner_host, owner_pid, owner_started)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (call_id, customer_id, started_at, owner.host, owner.pid, owner.started),
    ).rowcount
    if inserted and customer_id is not None:
        db.execute("UPDATE customers SET call_count = call_count + 1 WHERE id = ?", (customer_id,))
    return customer_id


def _upsert_customer(db: sqlite3.Connection, identity: str, seen_at: str) -> int:
    return int(
        db.execute(
            "INSERT INTO customers (participant_identity, created_at, last_seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT (participant_identity) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)"
            " RETURNING id",
            (identity, seen_at, seen_at),
        ).fetchone()[0]
    )


def _close_calls(db: sqlite3.Connection, found: list[stale.StaleCall], spool_file: Path) -> list[str]:
    # Read under the write lock: a replay commits before it forgets a spooled call.
    spooled = spool.call_ids(spool_file)
    now = utcnow_iso()
    closed = []
    for call in found:
        if call.call_id in spooled:
            continue
        if db.execute(
            "UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
            (call.ended_at, call.reason, call.call_id),
        ).rowcount:
            closed.append(call.call_id)
            db.execute(
                "UPDATE orders SET status = 'abandoned', updated_at = ? WHERE call_id = ? AND status = 'in_progress'",
                (now, call.call_id),
            )
    return closed


def _link_call(db: sqlite3.Connection, record: CallRecord) -> int:
    """Attach a call recorded without its customer (and its order and feedback) to the caller."""
    assert record.identity is not None
    started = record.started_at or record.ended_at
    customer_id = _upsert_customer(db, record.identity, started)
    _ensure_call(db, record.call_id, None, started)
    linked = "UPDATE {} SET customer_id = ? WHERE {} = ? AND customer_id IS NULL"
    if db.execute(linked.format("calls", "id"), (customer_id, record.call_id)).rowcount:
        db.execute("UPDATE customers SET call_count = call_count + 1 WHERE id = ?", (customer_id,))
    db.execute(linked.format("feedback", "call_id"), (customer_id, record.call_id))
    order = db.execute(
        linked.format("orders", "call_id") + " RETURNING id, status, total_cents", (customer_id, record.call_id)
    ).fetchone()
    if order is not None and order[1] == "placed":
        _count_placed(db, customer_id, order[0], order[2])
    return customer_id


def _ensure_call(db: sqlite3.Connection, call_id: str, customer_id: int | None, started_at: str) -> None:
    """The call's row, for writes about a call whose start could not be recorded."""
    db.execute(
        "INSERT INTO calls (id, customer_id, started_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (call_id, customer_id, started_at),
    )


def _write_email(db: sqlite3.Connection, customer_id: int, email: str) -> None:
    db.execute("UPDATE customers SET email = ? WHERE id = ?", (email, customer_id))


def _write_call(db: sqlite3.Connection, record: CallRecord) -> None:
    # A call whose start could not be recorded still reaches its customer, through its identity.
    if record.customer_id is None and record.identity is not None:
        record = record.model_copy(update={"customer_id": _link_call(db, record)})
    _ensure_call(db, record.call_id, record.customer_id, record.started_at or record.ended_at)
    if record.caller_name:
        _write_name(db, record.call_id, record.customer_id, record.caller_name, record.ended_at)
    if record.email and record.customer_id is not None:
        _write_email(db, record.customer_id, record.email)
    if record.order is not None:
        started = record.started_at or record.ended_at
        _write_order(db, record.call_id, record.customer_id, record.order, started, record.ended_at)
    if record.feedback is not None:
        _write_feedback(db, record.call_id, record.customer_id, record.feedback, record.ended_at)
    _write_messages(db, record.call_id, record.messages)
    db.execute(
        "UPDATE calls SET ended_at = coalesce(ended_at, ?), end_reason = coalesce(end_reason, ?) WHERE id = ?",
        (record.ended_at, record.end_reason, record.call_id),
    )
    if record.customer_id is not None:
        db.execute(
            "UPDATE customers SET last_seen_at = max(last_seen_at, ?) WHERE id = ?",
            (record.ended_at, record.customer_id),
        )


# What a call writes about its customer stands unless a newer call of theirs has begun since
# (a call replayed late from the spool must not undo what the caller told us after it).
_NOT_SUPERSEDED = " WHERE id = ? AND last_seen_at <= ?"


def _write_name(db: sqlite3.Connection, call_id: str, customer_id: int | None, name: str, at: str) -> None:
    db.execute("UPDATE calls SET caller_name = ? WHERE id = ?", (name, call_id))
    if customer_id is not None:
        db.execute("UPDATE customers SET name = ?" + _NOT_SUPERSEDED, (name, customer_id, at))


def _write_order(
    db: sqlite3.Connection, call_id: str, customer_id: int | None, order: OrderRecord, created_at: str, at: str
) -> int | None:
    """The order as it is at time ``at``; a new row is dated ``created_at``."""
    existing = db.execute("SELECT id, status FROM orders WHERE call_id = ?", (call_id,)).fetchone()
    if existing is not None and existing[1] == "placed":
        return int(existing[0])
    if existing is None and not order.items:
        return None
    if existing is None:
        _ensure_call(db, call_id, customer_id, created_at)
    placed_at = at if order.status == "placed" else None
    total_cents = order.total_cents
    order_id = int(
        db.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
            " payment_method, created_at, updated_at, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id) DO UPDATE SET status = excluded.status,"
            " customer_id = coalesce(orders.customer_id, excluded.customer_id),"
            " subtotal_cents = excluded.subtotal_cents, tip_cents = excluded.tip_cents,"
            " total_cents = excluded.total_cents, payment_method = excluded.payment_method,"
            " updated_at = excluded.updated_at, placed_at = excluded.placed_at RETURNING id",
            (
                call_id,
                customer_id,
                order.status,
                order.subtotal_cents,
                order.tip_cents,
                total_cents,
                order.payment_method,
                created_at,
                at,
                placed_at,
            ),
        ).fetchone()[0]
    )
    if existing is not None:
        db.execute("DELETE FROM order_items WHERE order_id = ?", (order_id,))
    db.executemany(
        "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents,"
        " modifications) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                order_id,
                position,
                item.menu_item_id,
                item.name,
                item.quantity,
                item.unit_price_cents,
                json.dumps(item.modifications, ensure_ascii=False) if item.modifications else "[]",
            )
            for position, item in enumerate(order.items, start=1)
        ],
    )
    if order.status == "placed" and customer_id is not None:
        _count_placed(db, customer_id, order_id, total_cents)
    return order_id


def _count_placed(db: sqlite3.Connection, customer_id: int, order_id: int, total_cents: int) -> None:
    """Keep the customer's aggregates, so the caller lookup never scans their history."""
    # A call replayed late from the spool must not displace a newer last order.
    db.execute(
        "UPDATE customers SET order_count = order_count + 1, lifetime_spend_cents = lifetime_spend_cents + ?,"
        " last_order_id = CASE WHEN last_order_id IS NULL"
        "   OR (SELECT created_at FROM orders WHERE id = last_order_id)"
        "      <= (SELECT created_at FROM orders WHERE id = ?) THEN ? ELSE last_order_id END"
        " WHERE id = ?",
        (total_cents, order_id, order_id, customer_id),
    )


def _write_feedback(
    db: sqlite3.Connection, call_id: str, customer_id: int | None, feedback: FeedbackRecord, at: str
) -> None:
    _ensure_call(db, call_id, customer_id, at)
    db.execute(
        "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (call_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment,"
        " customer_id = coalesce(feedback.customer_id, excluded.customer_id)",
        (call_id, customer_id, feedback.rating, feedback.comment, at),
    )
    if customer_id is not None:
        db.execute(
            "UPDATE customers SET last_rating = ?, last_feedback_comment = ?" + _NOT_SUPERSEDED,
            (feedback.rating, feedback.comment, customer_id, at),
        )


def _write_messages(db: sqlite3.Connection, call_id: str, messages: Sequence[MessageRecord]) -> None:
    db.executemany(
        "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (call_id, seq) DO UPDATE SET role = excluded.role, agent = excluded.agent,"
        " content = excluded.content, created_at = excluded.created_at"
        " WHERE messages.content IS NOT excluded.content OR messages.role IS NOT excluded.role",
        [(call_id, seq, m.role, m.agent, m.content, m.created_at) for seq, m in enumerate(messages, start=1)],
    )


def _prepare(path: str, busy_timeout_ms: int) -> None:
    """Check the file is ours (or new), then switch on WAL and migrate; never touches foreign files."""
    file = Path(path)
    if file.is_dir():
        raise NotADatabase(f"database path {path} is a directory")
    if not file.parent.is_dir():
        raise NotADatabase(f"folder {file.parent} does not exist")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        _check_ours(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        migrations.migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(f"{path} is not a usable database ({exc})") from None
    finally:
        conn.close()


def _check_ours(conn: sqlite3.Connection, path: str) -> None:
    try:
        migrations.schema_version(conn)
    except NotADatabase as exc:
        raise NotADatabase(f"{path}: {exc}") from None


async def _recover(repo: Repository) -> None:
    """Spool first: a spooled call must be finalized, not closed as abandoned."""
    try:
        await repo.replay_spool()
        await repo.close_stale_calls()
    except RepositoryError as exc:
        log.warning("recovery at start postponed: %s", exc)


@asynccontextmanager
async def open_repository(
    url_or_path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> AsyncIterator[Repository]:
    """Open the database and yield the repository.

    Creates and migrates it; then, in the background (``repo.recovery``), replays the calls spooled
    while it refused writes and closes the calls left open by processes that died. A database that
    still refuses writes does not stop the product from starting. (Reports open it read-only with
    ``db.reports.open_read_only``.)
    """
    path = database_path(url_or_path)
    await asyncio.to_thread(_prepare, path, busy_timeout_ms)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = FULL")
        conn.row_factory = sqlite3.Row
        repo = Repository(conn, path, busy_timeout_ms=busy_timeout_ms)
        # In the background: a database that is slow to take writes must not delay the first call.
        repo.recovery = asyncio.create_task(_recover(repo), name="recover")
        try:
            yield repo
        finally:
            await repo.recovery
    finally:
        await conn.close()
