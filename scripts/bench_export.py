"""Benchmark the order export against the sqlite3 shell producing the same rows as CSV.

    python scripts/bench_export.py                   # 1,000,000 orders (builds the file once)
    python scripts/bench_export.py --orders 2000     # a quick smoke run

Both run as child processes writing CSV to a file, alternately, several times; the report
gives the best and median wall time of each, their ratio and each one's peak memory (RSS).
The two outputs are then checked to hold the same rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from export_data import build_synthetic_database
from harness import RawSqlite, export_against_raw, product_export

NAMES = {"product": "export_orders.py", "raw": "sqlite3 -csv"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_export", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the synthetic database")
    parser.add_argument("--db", type=Path, help="database file (default .bench/export-ORDERS.db, built if missing)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each tool (default 3)")
    args = parser.parse_args(argv)

    db = args.db or Path(".bench") / f"export-{args.orders}.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build_synthetic_database(db, orders=args.orders)
        print(f"built {db} ({args.orders:,} orders) in {time.perf_counter() - started:.1f} s")

    raw = RawSqlite(db)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
            export = export_against_raw(product_export(db), raw.export(), Path(folder), repeat=args.repeat)
    finally:
        raw.close()

    tools = export["tools"]
    print(
        f"{export['orders']:,} orders, {export['bytes'] / 1e6:.0f} MB of CSV, {args.repeat} runs each,"
        f" {os.cpu_count()} CPUs"
    )
    print(f"{'tool':<18} {'best s':>8} {'median s':>9} {'peak RSS MB':>12}")
    for name, tool in tools.items():
        shown = "n/a" if tool["peak_mb"] is None else f"{tool['peak_mb']:.1f}"
        print(f"{NAMES[name]:<18} {tool['best_s']:>8.2f} {tool['median_s']:>9.2f} {shown:>12}")
    best = tools["product"]["best_s"] / tools["raw"]["best_s"]
    median = tools["product"]["median_s"] / tools["raw"]["median_s"]
    print(f"ratio export/shell: {best:.2f}x best, {median:.2f}x median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
