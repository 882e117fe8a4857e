"""What the writer processes of the backup tests run: plain SQLite writes into the live database."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Event

# A writer left running by a failed test stops by itself.
GIVE_UP_AFTER_S = 120.0


def add_customers(db_path: str, worker: int, batch: int, started: Event, stop: Event, pause_s: float = 0.005) -> None:
    """Insert customers ``w<worker>-0``, ``w<worker>-1`` ... in order, ``batch`` per transaction, until ``stop``.

    Sets ``started`` once its first transaction is committed. Pauses after each commit, as calls
    do between turns: SQLite's busy handler polls, so a writer that never paused could keep the
    others from ever getting the lock.
    """
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    deadline = time.monotonic() + GIVE_UP_AFTER_S
    written = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    continue  # the other writers held the lock past the timeout on a loaded machine
                raise
            now = datetime.now(UTC).isoformat()
            conn.executemany(
                "INSERT INTO customers (participant_identity, created_at, last_seen_at) VALUES (?, ?, ?)",
                [(f"w{worker}-{written + n}", now, now) for n in range(batch)],
            )
            conn.execute("COMMIT")
            written += batch
            started.set()
            time.sleep(pause_s)
    finally:
        conn.close()
