"""Benchmark the order export against the sqlite3 shell producing the same rows as CSV.

    python scripts/bench_export.py                   # 1,000,000 orders (builds the file once)
    python scripts/bench_export.py --orders 2000     # a quick smoke run

Both run as child processes writing CSV to a file, alternately, several times; the report
gives the best and median wall time of each, their ratio and each one's peak memory (RSS).
The two outputs are then checked to hold the same rows.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

from export_data import build_synthetic_database

SCRIPT = Path(__file__).resolve().parent / "export_orders.py"
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None

# The restaurant's time zone for both: the export's from MEMORY_AGENT_TIMEZONE, the shell's from TZ
# (SQLite's ``localtime``, through the C library: a conversion of its own to compare with).
ZONE = "America/New_York"
ENVIRONMENT = {**os.environ, "MEMORY_AGENT_TIMEZONE": ZONE, "TZ": ZONE, "PGTZ": ZONE, "MEMORY_AGENT_RESTAURANT": ""}

# The raw reference: the same columns (db.reports.ORDER_COLUMNS), formatting and order as
# export_orders.py's CSV; the time in local time with its offset, as ISO 8601 writes it.
REFERENCE_SQL = """
SELECT o.id AS order_id,
       strftime('%Y-%m-%dT%H:%M:%S', substr(o.created_at, 1, 19), 'localtime')
       || (SELECT printf('%s%02d:%02d', CASE WHEN m < 0 THEN '-' ELSE '+' END, abs(m) / 60, abs(m) % 60)
           FROM (SELECT CAST(round((julianday(substr(o.created_at, 1, 19), 'localtime')
                                    - julianday(substr(o.created_at, 1, 19))) * 1440) AS INTEGER) AS m)) AS created_at,
       c.participant_identity AS customer_identity,
       coalesce(c.name, k.caller_name) AS customer_name, o.status,
       (SELECT coalesce(sum(s.quantity), 0) FROM order_items AS s WHERE s.order_id = o.id) AS item_count,
       coalesce((SELECT group_concat(
           s.quantity || 'x ' || s.name || CASE WHEN s.modifications = '[]' THEN ''
               ELSE ' (' || (SELECT group_concat(value, ', ') FROM json_each(s.modifications)) || ')' END,
           ', ') FROM order_items AS s WHERE s.order_id = o.id), '') AS items,
       printf('%d.%02d', o.subtotal_cents / 100, o.subtotal_cents % 100) AS subtotal_dollars,
       printf('%d.%02d', o.tip_cents / 100, o.tip_cents % 100) AS tip_dollars,
       printf('%d.%02d', o.total_cents / 100, o.total_cents % 100) AS total_dollars,
       f.rating, o.kitchen_note
FROM orders AS o
LEFT JOIN customers AS c ON c.id = o.customer_id
LEFT JOIN calls AS k ON k.id = o.call_id
LEFT JOIN feedback AS f ON f.call_id = o.call_id
ORDER BY o.created_at, o.id;
"""


def run(command: list[str], output: Path, stdin_text: str | None = None) -> tuple[float, float | None]:
    """Wall seconds and peak RSS in MB of one child writing to ``output``.

    Peak memory comes from GNU time: a child's own rusage would count the pages it shared with
    this Python process between fork and exec.
    """
    peak_file = output.with_suffix(".rss")
    timed = [GNU_TIME, "-f", "%M", "-o", str(peak_file), *command] if GNU_TIME else command
    with output.open("wb") as out:
        start = time.perf_counter()
        child = subprocess.run(
            timed, input=(stdin_text or "").encode(), stdout=out, stderr=subprocess.PIPE, env=ENVIRONMENT
        )
        elapsed = time.perf_counter() - start
    if child.returncode != 0:
        sys.exit(f"bench_export: {command[0]} failed: {child.stderr.decode().strip()}")
    peak = int(peak_file.read_text().split()[-1]) / 1024 if GNU_TIME else None
    return elapsed, peak


def same_rows(exported: Path, reference: Path) -> int:
    """Compare the two CSV files row by row; the export's neutralized cells lose their quote mark."""
    count = 0
    with exported.open(newline="", encoding="utf-8") as a, reference.open(newline="", encoding="utf-8") as b:
        for mine, theirs in zip_longest(csv.reader(a), csv.reader(b)):
            if mine is None or theirs is None:
                sys.exit(f"bench_export: outputs differ in length after {count} rows")
            plain = [cell[1:] if cell[:2] in _NEUTRALIZED else cell for cell in mine]
            if plain != theirs:
                sys.exit(f"bench_export: row {count} differs:\n  {mine}\n  {theirs}")
            count += 1
    return count - 1


_NEUTRALIZED = {"'" + ch for ch in "=+-@\t\r"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_export", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the synthetic database")
    parser.add_argument("--db", type=Path, help="database file (default .bench/export-ORDERS.db, built if missing)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each tool (default 3)")
    args = parser.parse_args(argv)

    shell = shutil.which("sqlite3")
    if shell is None:
        print("bench_export: the sqlite3 command-line shell is not installed", file=sys.stderr)
        return 1
    db = args.db or Path(".bench") / f"export-{args.orders}.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build_synthetic_database(db, orders=args.orders)
        print(f"built {db} ({args.orders:,} orders) in {time.perf_counter() - started:.1f} s")

    tools = {
        "export_orders.py": ([sys.executable, str(SCRIPT), "--db", str(db)], None),
        "sqlite3 -csv": ([shell, "-csv", "-header", str(db)], REFERENCE_SQL),
    }
    times: dict[str, list[float]] = {name: [] for name in tools}
    peaks: dict[str, float | None] = dict.fromkeys(tools)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        outputs = {name: Path(folder) / f"{n}.csv" for n, name in enumerate(tools)}
        run(*tools["sqlite3 -csv"][:1], outputs["sqlite3 -csv"], tools["sqlite3 -csv"][1])  # warm the cache
        for _ in range(args.repeat):
            for name, (command, stdin_text) in tools.items():
                elapsed, peak = run(command, outputs[name], stdin_text)
                times[name].append(elapsed)
                peaks[name] = None if peak is None else max(peak, peaks[name] or 0.0)
        rows = same_rows(outputs["export_orders.py"], outputs["sqlite3 -csv"])
        size = outputs["export_orders.py"].stat().st_size

    print(f"{rows:,} orders, {size / 1e6:.0f} MB of CSV, {args.repeat} runs each, {os.cpu_count()} CPUs")
    print(f"{'tool':<18} {'best s':>8} {'median s':>9} {'peak RSS MB':>12}")
    for name in tools:
        peak_mb = peaks[name]
        shown = "n/a" if peak_mb is None else f"{peak_mb:.1f}"
        print(f"{name:<18} {min(times[name]):>8.2f} {statistics.median(times[name]):>9.2f} {shown:>12}")
    best = min(times["export_orders.py"]) / min(times["sqlite3 -csv"])
    median = statistics.median(times["export_orders.py"]) / statistics.median(times["sqlite3 -csv"])
    print(f"ratio export/shell: {best:.2f}x best, {median:.2f}x median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
