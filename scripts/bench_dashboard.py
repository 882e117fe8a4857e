"""How fast the owner's dashboard answers on a big database: each chart's query, timed through Datasette.

    python scripts/bench_dashboard.py                      # 1,000,000 orders (built once, ~1 minute)
    python scripts/bench_dashboard.py --orders 20000 --repeat 2

Each chart is asked for as the dashboard's page asks for it (``/db.json?sql=...``, logged in,
through Datasette with the memory-agent plugin, in process) over two ranges: the dashboard's
default, the last 90 days of the data, and the whole history. Prints the median and the slowest
of ``--repeat`` runs, in milliseconds, as a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from datasette.app import Datasette  # type: ignore[import-untyped]
from export_data import build_synthetic_database

from memory_agent.datasette import dashboard
from memory_agent.datasette.serve import register_plugin
from memory_agent.inspect import ROOT_ACTOR, load_metadata

ROOT = Path(__file__).resolve().parent.parent


async def measure(db: Path, *, timezone: str, repeat: int) -> list[tuple[str, str, list[float], int]]:
    """``(chart, range, milliseconds of each run, rows)`` for every chart and both ranges."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    first, last = conn.execute(
        "SELECT substr(min(created_at), 1, 10), substr(max(created_at), 1, 10) FROM orders"
    ).fetchone()
    conn.close()
    ranges = {
        "last 90 days": ((date.fromisoformat(last) - timedelta(days=89)).isoformat(), last),
        "all history": (first, last),
    }
    register_plugin()
    # The time limit is lifted here so that a slow query is measured rather than cut off.
    ds = Datasette(
        [str(db)], metadata=load_metadata(db.stem, timezone=timezone), settings={"sql_time_limit_ms": 60_000}
    )
    await ds.invoke_startup()
    cookies = {"ds_actor": ds.sign({"a": ROOT_ACTOR}, "actor")}
    results = []
    for slug, chart in dashboard.CHARTS.items():
        for label, (since, until) in ranges.items():
            params = {"sql": chart["query"], "since": since, "until": until, "_shape": "objects"}
            runs = []
            rows = 0
            for _ in range(repeat):
                started = time.perf_counter()
                response = await ds.client.get(f"/{db.stem}.json", params=params, cookies=cookies)
                runs.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{slug}: {response.status_code} {response.text[:200]}")
                rows = len(response.json()["rows"])
            results.append((slug, label, runs, rows))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the synthetic database")
    parser.add_argument("--db", type=Path, help="database file (default .bench/export-ORDERS.db, built if missing)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each query (default 5)")
    parser.add_argument("--timezone", default="America/New_York", help="the restaurant's time zone")
    args = parser.parse_args(argv)
    db = args.db or ROOT / ".bench" / f"export-{args.orders}.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        print(f"building {db} ({args.orders:,} orders)...", file=sys.stderr)
        build_synthetic_database(db, orders=args.orders)
    results = asyncio.run(measure(db, timezone=args.timezone, repeat=args.repeat))
    print(f"Dashboard queries on {db.name} ({args.orders:,} orders), {args.timezone}, {args.repeat} runs each:\n")
    print("| chart | range | rows | median ms | slowest ms |")
    print("|---|---|---:|---:|---:|")
    for slug, label, runs, rows in results:
        print(f"| {slug} | {label} | {rows} | {statistics.median(runs):.0f} | {max(runs):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
