"""What an erasure costs on PostgreSQL at scale: ``forget`` of one caller among many, its pages cleaned.

    python scripts/bench_pg_erasure.py                      # a throwaway server; 1,000,000 messages
    python scripts/bench_pg_erasure.py --messages 100000    # smaller
    python scripts/bench_pg_erasure.py --url postgresql://me@db.internal/postgres   # a server of yours

Fills a new database with ``--messages`` transcript lines (20 per call, one call per caller, each
line a few words and the caller's email), then erases one caller with the repository's ``forget``
(the rows deleted in one transaction, then every affected table rewritten by ``VACUUM (FULL, ANALYZE)`` with
its indexes) and prints how long it took in all and how long each table was locked; for comparison,
the online alternative that leaves the freed bytes in the heap's pages (``VACUUM`` and
``REINDEX ... CONCURRENTLY``) is timed on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from harness import fresh_database, throwaway_server

from db import open_repository, prepare_database

LINES_PER_CALL = 20

FILL = """
INSERT INTO customers (participant_identity, household, name, email, created_at, last_seen_at)
SELECT '+1415' || lpad(n::text, 7, '0'), '+1415' || lpad(n::text, 7, '0'), 'Caller' || n,
       'caller' || n || '@example.com', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'
FROM generate_series(1, %(calls)s) AS n;
INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason)
SELECT 'call-' || c.id, c.id, c.name, '2026-01-01T00:00:00+00:00', '2026-01-01T00:05:00+00:00', 'user_initiated'
FROM customers AS c;
INSERT INTO messages (call_id, seq, role, agent, content, created_at)
SELECT 'call-' || c.id, s, CASE WHEN s %% 2 = 0 THEN 'user' ELSE 'assistant' END, 'order_taker',
       (ARRAY['a margherita please', 'extra basil on that', 'my email is ', 'the pizza was cold',
              'two tiramisu', 'no nuts please, I am allergic'])[1 + (c.id + s) %% 6]
       || CASE WHEN (c.id + s) %% 6 = 2 THEN c.email ELSE ' word' || ((c.id * 31 + s) %% 5000) END,
       '2026-01-01T00:00:00+00:00'
FROM customers AS c, generate_series(1, %(lines)s) AS s;
"""


def timed(conn: psycopg.Connection, statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement)
    return time.perf_counter() - started


async def erase(url: str, identity: str, spool: Path) -> float:
    async with open_repository(url, spool_dir=spool) as repo:
        await repo.recovered()
        started = time.perf_counter()
        erased = await repo.forget(identity)
        seconds = time.perf_counter() - started
    assert erased.counts["customers"] == 1 and erased.log_emptied, erased
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a server's database where this may create and drop one (default: its own)")
    parser.add_argument("--messages", type=int, default=1_000_000, help="transcript lines (1,000,000)")
    args = parser.parse_args(argv)
    if args.url:
        return bench(args.url, args.messages)
    with throwaway_server() as server:
        return bench(server, args.messages)


def bench(server: str, messages: int) -> int:
    calls = max(1, messages // LINES_PER_CALL)
    with fresh_database(server) as url, tempfile.TemporaryDirectory() as spool:
        asyncio.run(prepare_database(url))
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in FILL.split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"calls": calls, "lines": LINES_PER_CALL})
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('messages'))").fetchone()
        print(
            f"{calls * LINES_PER_CALL:,} messages of {calls:,} callers ({size[0] if size else '?'} with indexes),"
            f" filled in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        target = "+1415" + str(calls // 2).zfill(7)
        total = asyncio.run(erase(url, target, Path(spool)))
        print(
            f"forget (delete, then VACUUM (FULL, ANALYZE) of the tables it erased from): {total:.1f} s",
            flush=True,
        )
        with psycopg.connect(url, autocommit=True) as conn:
            for table in ("messages", "customers"):
                print(
                    f"  VACUUM FULL {table} alone (the time it is locked): {timed(conn, f'VACUUM FULL {table}'):.1f} s"
                )
            vacuum = timed(conn, "VACUUM messages")
            reindex = timed(conn, "REINDEX INDEX CONCURRENTLY ix_messages_search")
            print(
                f"  online alternative: VACUUM messages {vacuum:.1f} s, REINDEX CONCURRENTLY of its search index"
                f" {reindex:.1f} s (the heap's freed bytes stay until reused)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
