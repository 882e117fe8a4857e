"""A caller's personal data on PostgreSQL: what only PostgreSQL does around ``db.statements.privacy`` (written
once for both backends): an erasure first takes the locks of the numbers it erases, and afterwards the
repository rewrites the tables so that no erased byte stays in their pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import errors as pg_errors

from db.postgres.lookup import Conn
from db.statements import privacy as statements
from db.statements.plan import Plan, every, number_lock, run_postgres
from db.statements.privacy import ERASED as ERASED


async def forget(db: Conn, identity: str, exact: bool, erasure: Plan[dict[str, Any]]) -> dict[str, Any]:
    """An erasure (``db.statements.privacy.forget`` of ``identity``), once the numbers it erases are locked."""
    return await run_postgres(db, _locked(identity, exact, erasure))


def _locked(identity: str, exact: bool, erasure: Plan[dict[str, Any]]) -> Plan[dict[str, Any]]:
    """``erasure`` after the locks of the numbers it erases on, taken alone: a write of a call from one of them
    either committed before (and is erased now) or waits, then sees the erasure and writes nothing."""
    found = yield every(
        statements.HOUSEHOLD_OF_PROFILE if exact else statements.HOUSEHOLDS_ON_NUMBER, {"key": identity}
    )
    numbers = sorted({identity, *(str(row[0]) for row in found)})
    for number in numbers:  # in one order, so two erasures never wait for each other
        yield number_lock(number, shared=False)
    return (yield from erasure)


async def purge(db: Conn, cutoff: str, batch: int) -> dict[str, int]:
    """``db.statements.privacy.purge`` on PostgreSQL (its GIN indexes are cleaned by vacuum)."""
    return await run_postgres(db, statements.purge(cutoff, batch))


async def export_caller(db: Conn, identity: str) -> dict[str, Any]:
    """``db.statements.privacy.export_caller`` on PostgreSQL."""
    return await run_postgres(db, statements.export_caller(identity))


# How long the rewrite of one table may wait for its lock (a long report holding the table): past it,
# the table is cleaned online instead (see ``clean_after_erasure``).
REWRITE_LOCK_TIMEOUT = "5s"


async def clean_after_erasure(conn: Conn, tables: Sequence[str], *, online: bool = False) -> bool:
    """Leave no erased byte in the tables' pages or their indexes (on an autocommit connection); False
    if some table could only be cleaned online, its freed heap space keeping the bytes until reused.

    ``DELETE`` only marks rows dead, and ``VACUUM`` frees their space without overwriting it; a GIN
    index never drops an entry (a lexeme stays though no row has it), and a b-tree keeps a removed
    entry's bytes in its page's free space; the planner's statistics sample column values. So each
    table is rewritten with its indexes into new files (``VACUUM FULL``; the old files are removed),
    which locks the table for that time, and its statistics sampled again from the rows that remain. A table whose
    lock is not granted within ``REWRITE_LOCK_TIMEOUT`` is vacuumed and its indexes rebuilt without
    blocking anyone (``REINDEX ... CONCURRENTLY``) instead; with ``online``, every table is (the rewrite
    would hold up the writes of the calls running meanwhile for seconds on a large table).
    """
    rewritten = True
    for table in tables:
        if online:
            await _clean_online(conn, table)
            rewritten = False
            continue
        try:
            await conn.execute(f"SET lock_timeout = '{REWRITE_LOCK_TIMEOUT}'")
            await conn.execute(f"VACUUM (FULL, ANALYZE) {table}")
        except pg_errors.LockNotAvailable:
            rewritten = False
            await conn.execute("RESET lock_timeout")
            await _clean_online(conn, table)
        finally:
            await conn.execute("RESET lock_timeout")
    return rewritten


async def _clean_online(conn: Conn, table: str) -> None:
    """Free the table's dead rows and rebuild its indexes, blocking no one."""
    await conn.execute(f"VACUUM (ANALYZE) {table}")
    await conn.execute(f"REINDEX TABLE CONCURRENTLY {table}")
