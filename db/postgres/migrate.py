"""PostgreSQL's side of the migrations (``db.schema.alembic``): refusing databases not ours, migrating under a lock.

The tables, columns, views and indexes are SQLite's, from the same models and revisions, so a row
reads the same on either backend: timestamps stay ISO 8601 text, JSON stays text, every text column
compares byte by byte (``COLLATE "C"``, SQLite's ``BINARY``). Full-text search is PostgreSQL's own:
GIN indexes on ``to_tsvector`` of the transcripts and comments (``db.schema.models.FULL_TEXT``, in place of
SQLite's FTS5 tables), without an extra column, so ``SELECT *`` gives SQLite's row.

Several hosts starting at once migrate once: the migration runs in one transaction under an
advisory lock, and re-checks what is applied once it holds it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import StaticPool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from db.errors import NotADatabase
from db.schema import LATEST_VERSION, checked_version
from db.schema.models import MESSAGES_SEARCH, SEARCH_CONFIG

__all__ = [
    "LATEST_VERSION",
    "LEGACY_VERSION",
    "MESSAGES_SEARCH",
    "MIGRATION_LOCK",
    "SEARCH_CONFIG",
    "migrate",
    "schema_version",
]

# Any key will do, as long as it is this product's: "MEMA" as in SQLite's application_id.
MIGRATION_LOCK = 0x4D454D41
# The last version of PostgreSQL's migrations before Alembic (``db.schema.alembic.legacy``).
LEGACY_VERSION = 7


async def schema_version(conn: psycopg.AsyncConnection[Any]) -> int:
    """The database's schema version (SQLite's numbers), 0 when empty; refuses databases that are not ours."""
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE'"
    )
    tables = {str(row[0]) for row in await cur.fetchall()}
    if not tables:
        return 0
    if "schema_migrations" not in tables or "customers" not in tables:
        raise NotADatabase("a PostgreSQL database, but not a memory-agent database (it holds other tables)")
    if "alembic_version" in tables:
        cur = await conn.execute("SELECT max(version_num) FROM alembic_version")
        row = await cur.fetchone()
        if row and row[0] is not None:
            return checked_version(str(row[0]))
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
    row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > LEGACY_VERSION:
        checked_version(str(version + 4))  # PostgreSQL's 7 was SQLite's 11
    return version + 4 if version else 0


async def migrate(conn: psycopg.AsyncConnection[Any]) -> int:
    """Bring the database to this code's schema (``db.schema.alembic.upgrade``) in one transaction under the lock."""
    from db.schema import alembic as schema  # Alembic is loaded only where a database is migrated

    await schema_version(conn)
    autocommit = conn.autocommit
    await conn.set_autocommit(False)

    async def this_connection() -> Any:
        return conn

    engine = create_async_engine("postgresql+psycopg://", async_creator=this_connection, poolclass=StaticPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await connection.run_sync(schema.upgrade)
            await connection.commit()
    except DBAPIError as exc:  # the driver's own error, as the callers know it
        raise (exc.orig or exc) from None
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await conn.rollback()
        await conn.set_autocommit(autocommit)
    return LATEST_VERSION
