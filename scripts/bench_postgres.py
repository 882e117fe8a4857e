"""The PostgreSQL backend against the raw driver and psql, in one run on one server.

    python scripts/bench_postgres.py --smoke                     # starts a throwaway server; seconds
    python scripts/bench_postgres.py                             # 10,000 customers
    python scripts/bench_postgres.py --url postgresql://me@db.internal/postgres   # a server of yours

The synthetic database of ``bench.py`` (SQLite, cached by scale) is copied into a new database
on the server with ``migrate-to-postgres``'s copy, then, interleaved: recall (``recall`` +
``memory_text`` against psycopg running the same lookup), the end-of-call write (``save_call``,
forced, against one psycopg transaction writing the same rows), 1 and 8 processes finishing
calls at once (as two hosts), and the export (``memory-agent export --db URL``, over the 1,000,000
orders of ``bench_export.py``'s file) against ``psql -c "\\copy (...) to stdout csv"``. Prints the
report (Markdown) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench_data import cached_database, regular_identity
from bench_layer import export_source, recall_vs_raw, write_vs_raw
from bench_writer import concurrent_writers
from harness import (
    PAIR_HEADERS,
    RawPostgres,
    copy_into_postgres,
    export_against_raw,
    fresh_database,
    machine_line,
    markdown_table,
    pair_rows,
    product_export,
    ratio,
    redacted,
    server_facts,
    status,
    throwaway_server,
    write_json,
)

from db import open_repository

ROOT = Path(__file__).resolve().parent.parent
PROCESS_COUNTS = (1, 8)


# -- measuring ------------------------------------------------------------------------------------


async def bench_calls(url: str, customers: int, samples: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(5)

    def identity() -> str:
        return regular_identity(rng.randint(1, customers))

    raw = RawPostgres(url)
    try:
        async with open_repository(url, spool_dir=folder) as repo:
            await repo.recovered()
            print("1. recall", flush=True)
            recall = await recall_vs_raw(repo, raw, identity, samples, hop=True)
            print("2. end-of-call write", flush=True)
            finalize = await write_vs_raw(repo, raw, identity, samples // 4)
    finally:
        raw.close()
    return {"recall": recall, "finalize": finalize}


def bench_export(url: str, repeat: int, folder: Path) -> dict[str, Any]:
    raw = RawPostgres(url)
    try:
        export = export_against_raw(product_export(url), raw.export(), folder, repeat=repeat)
    finally:
        raw.close()
    tools = export.pop("tools")
    return export | {"tools": {"memory-agent export": tools["product"], "psql \\copy": tools["raw"]}}


# -- the report -----------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    plan, server = results["plan"], results["server"]
    recall, finalize, export = results["recall"], results["finalize"], results["export"]
    tools = export["tools"]
    export_ratio = tools["memory-agent export"]["median_s"] / tools["psql \\copy"]["median_s"]
    lines = [
        f"### PostgreSQL: {plan['customers']:,} customers{' (smoke)' if plan['smoke'] else ''}",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {machine_line()}",
        f"- Server: {server['version']} on 127.0.0.1, {server['settings']}; psycopg {server['psycopg']}",
        f"- Database: `bench.py`'s synthetic file ({results['copy']['rows']:,} rows) copied with"
        f" `migrate-to-postgres` in {results['copy']['seconds']:.1f} s"
        + (
            f"; the export's, `bench_export.py`'s ({results['export_copy']['rows']:,} rows), in"
            f" {results['export_copy']['seconds']:.1f} s"
            if "export_copy" in results
            else ""
        ),
        "",
        "Times in milliseconds; ratios against the reference measured in the same run.",
        "",
        "#### Recall: identity to memory text",
        "",
        "`product` is `PostgresRepository.recall` + `memory_text` on a random caller; `raw` is psycopg running"
        " the same lookup written out in plain SQL (`harness.RawPostgres`) on one connection; `hop` is a `SELECT 1`"
        " through `Repository.read` (the pool), the floor of a pooled read (the lookup has a connection of its own).",
        "",
        markdown_table(PAIR_HEADERS, pair_rows(recall)),
        "",
        "#### End-of-call write",
        "",
        "A finished call's final record (an order of 5 items, feedback and 60 messages) of a random regular caller:"
        " `save_call(snapshot, forced=True)` (a synchronous commit) against one psycopg transaction writing the"
        " same rows in the fewest statements.",
        "",
        markdown_table(PAIR_HEADERS, pair_rows(finalize)),
        "",
        "#### Processes finishing calls at once",
        "",
        f"Separate processes as two hosts (host ids alternate), each with its own pool, writing finished calls"
        f" (`save_call(forced=True)`) for {plan['writer_seconds']:.1f} s, released together.",
        "",
        markdown_table(
            ("processes", "calls/s", "calls", "errors", "worst wait (ms)"),
            [
                (r["processes"], f"{r['calls_per_s']:.0f}", r["calls"], r["errors"], f"{r['worst_wait_ms']:.1f}")
                for r in results["processes"]
            ],
        ),
        "",
        "#### Export",
        "",
        f'`memory-agent export --db URL` (CSV, a server-side cursor) against `psql -c "\\copy (...) to stdout csv"`'
        f" of the same columns, both writing a file, {plan['repeat']} runs each after a warm-up;"
        f" {export['orders']:,} orders, {export['bytes'] / 1e6:.1f} MB; the rows are checked to be the same.",
        "",
        markdown_table(
            ("tool", "best s", "median s", "peak RSS MB"),
            [
                (
                    name,
                    f"{t['best_s']:.2f}",
                    f"{t['median_s']:.2f}",
                    "n/a" if t["peak_mb"] is None else f"{t['peak_mb']:.1f}",
                )
                for name, t in tools.items()
            ],
        ),
    ]
    errors = max(row["errors"] for row in results["processes"])
    measured = {
        "recall": ratio(recall, "p50_ms"),
        "finalize": ratio(finalize, "p50_ms"),
        "export": export_ratio,
    }
    goals = [
        ("recall p50 at most 2x the raw driver", f"{measured['recall']:.2f}x", status(measured["recall"], 2.0)),
        (
            "end-of-call write p50 at most 1.5x the raw driver",
            f"{measured['finalize']:.2f}x",
            status(measured["finalize"], 1.5),
        ),
        ("8 processes finishing calls at once: 0 errors", f"{errors} errors", "met" if errors == 0 else "missed"),
        ("export at most 1.5x `psql \\copy` (median)", f"{export_ratio:.2f}x", status(export_ratio, 1.5)),
    ]
    lines += ["", "#### Goals", "", markdown_table(("goal", "measured", "status"), goals), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a server's database where this may create and drop one (default: its own)")
    parser.add_argument("--customers", type=int, help="regular customers in the synthetic database (10,000)")
    parser.add_argument("--smoke", action="store_true", help="300 customers and few samples: seconds")
    parser.add_argument("--samples", type=int, default=2000, help="recall samples per contender (2000)")
    parser.add_argument("--writer-seconds", type=float, default=5.0, help="seconds per process count (5)")
    parser.add_argument("--repeat", type=int, default=3, help="timed export runs of each tool (3)")
    parser.add_argument(
        "--export-orders",
        type=int,
        default=1_000_000,
        help="orders in the export's own synthetic database, as bench_export.py's (1,000,000; 0: the recall database)",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "memory-agent-bench")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    customers = args.customers or (300 if args.smoke else 10_000)
    samples = 100 if args.smoke else args.samples
    seconds = 0.5 if args.smoke else args.writer_seconds
    repeat = 1 if args.smoke else args.repeat
    built = cached_database(customers, args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="bench-postgres-") as scratch:
        folder = Path(scratch)
        with contextlib.ExitStack() as stack:
            admin = args.url or stack.enter_context(throwaway_server())
            url = stack.enter_context(fresh_database(admin))
            print(f"server: {redacted(admin)}; database {urlsplit(url).path[1:]}", flush=True)
            results: dict[str, Any] = {
                "plan": {
                    "customers": customers,
                    "smoke": args.smoke,
                    "samples": samples,
                    "writer_seconds": seconds,
                    "repeat": repeat,
                },
                "server": server_facts(url),
                "copy": copy_into_postgres(built.path, url),
            }
            print(f"copied {results['copy']['rows']:,} rows in {results['copy']['seconds']:.1f} s", flush=True)
            results.update(asyncio.run(bench_calls(url, customers, samples, folder)))
            print("3. processes finishing calls at once", flush=True)
            results["processes"] = concurrent_writers(url, PROCESS_COUNTS, customers, seconds, hosts=2)
            print("4. export", flush=True)
            export_orders = 0 if args.smoke else args.export_orders
            if export_orders:
                source = export_source(args.cache_dir, export_orders)
                url = stack.enter_context(fresh_database(admin))
                results["export_copy"] = copy_into_postgres(source, url)
                print(f"copied {results['export_copy']['rows']:,} rows in {results['export_copy']['seconds']:.1f} s")
            results["export"] = bench_export(url, repeat, folder)
    text = render(results)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
