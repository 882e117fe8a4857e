"""Opening a database by its name: a ``postgresql://`` (or ``postgres://``) URL is PostgreSQL (``db.postgres``),
anything else a SQLite file (``db.sqlite``). Each backend is imported only when a database of its kind is opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from db.backend import Erasure, Repository
from db.outbox import OutboxStore
from db.safe_url import is_postgres_url
from db.sqlite.connection import BUSY_TIMEOUT_MS


async def prepare_database(url_or_path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Create and migrate the database ``url_or_path`` names, and open nothing: ``NotADatabase``,
    ``SchemaTooNew`` or ``DatabaseUnavailable`` in one line if it cannot be used."""
    if is_postgres_url(url_or_path):
        from db.postgres.repository import prepare_postgres

        await prepare_postgres(str(url_or_path))
        return
    from db.sqlite import repository as sqlite

    await sqlite.prepare_database(url_or_path, busy_timeout_ms=busy_timeout_ms)


async def count_erasure(
    url_or_path: str | Path, identity: str, *, name: str | None = None, spool_dir: str | Path | None = None
) -> Erasure:
    """What ``forget`` would erase, by reading only: no database, key, lock or spool file is created or
    changed, so a snapshot still in the spool is counted as its line rather than replayed first."""
    if is_postgres_url(url_or_path):
        from db.postgres.repository import count_erasure as count_on_postgres

        return await count_on_postgres(str(url_or_path), identity, name=name, spool_dir=spool_dir)
    from db.sqlite import repository as sqlite

    return await sqlite.count_erasure(url_or_path, identity, name=name, spool_dir=spool_dir)


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
) -> AsyncIterator[Repository]:
    """Open the database ``url_or_path`` names and yield its repository.

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
        from db.postgres.repository import open_postgres

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
    from db.sqlite.repository import open_sqlite_repository

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
async def open_outbox(url_or_path: str | Path) -> AsyncIterator[OutboxStore]:
    """The outbox of the database ``url_or_path`` names, migrated."""
    if is_postgres_url(url_or_path):
        from db.postgres.outbox import open_postgres_outbox

        async with open_postgres_outbox(str(url_or_path)) as pg:
            yield pg
        return
    from db.sqlite.outbox import open_sqlite_outbox

    async with open_sqlite_outbox(url_or_path) as lite:
        yield lite
