"""The data layer against the raw drivers, on SQLite and PostgreSQL, in one run.

    python scripts/bench_layer.py                   # 10,000 customers; the export over 1,000,000 orders
    python scripts/bench_layer.py --smoke           # seconds
    python scripts/bench_layer.py --url postgresql://me@db.internal/postgres

What the data layer costs over the driver under it, for the three paths the issue of one data layer
set goals for: the caller lookup (``recall`` + ``memory_text`` against the same statement on a plain
connection), the end-of-call write (``save_call`` of a finished call, forced, against one raw
transaction writing the same rows) and the export (``memory-agent export`` against ``sqlite3 -csv``
and ``psql \\copy``: time, peak memory and what importing it pulls in); and the lines of ``db/`` and
``scripts/``. Each backend's contenders take turns in the same run; PostgreSQL is a throwaway server
with the default, durable settings (or ``--url``, where this may create and drop databases).
Prints the report (Markdown); ``--out`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_data import cached_database, finished_call, regular_identity
from export_data import build_synthetic_database
from harness import (
    PAIR_HEADERS,
    Contender,
    RawPostgres,
    RawSqlite,
    copy_into_postgres,
    export_against_raw,
    fresh_database,
    import_weight,
    interleaved,
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

from db import CallSnapshot, Repository, open_repository
from memory_agent.memory import memory_text

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"recall": 2.0, "write": 1.5, "export": 1.5, "export_mb": 64.0}
EXPORT_MODULE = "memory_agent.export"


def python_lines(*folders: str) -> int:
    """Lines of the ``*.py`` files under ``folders`` (of the checkout), as ``find ... | xargs cat | wc -l``."""
    return sum(len(path.read_bytes().splitlines()) for f in folders for path in (ROOT / f).rglob("*.py"))


async def recall_vs_raw(
    repo: Repository, raw: RawSqlite | RawPostgres, identity: Callable[[], str], samples: int, *, hop: bool = False
) -> dict[str, Any]:
    """``recall`` + ``memory_text`` of a caller against the same lookup on the raw driver, interleaved;
    ``hop``: also a ``SELECT 1`` through the repository, the floor of any awaited read."""

    async def product() -> None:
        memory_text(await repo.recall(identity()))

    contenders: dict[str, Contender] = {"product": product, "raw": lambda: raw.recall(identity())}
    if hop:
        contenders["hop"] = lambda: repo.read("SELECT 1", ())
    return await interleaved(samples, contenders)


async def write_vs_raw(
    repo: Repository, raw: RawSqlite | RawPostgres, identity: Callable[[], str], samples: int
) -> dict[str, Any]:
    """The end-of-call write of a finished call (``save_call``, forced) against the raw transaction
    writing the same rows, interleaved."""
    template = finished_call("template", regular_identity(1))
    run = uuid.uuid4().hex[:10]
    counter = iter(range(10**9))
    # Each contender's snapshot is made before its clock starts: the write's own cost is measured.
    pending: dict[str, CallSnapshot] = {}

    def prepare(name: str) -> None:
        pending[name] = template.model_copy(update={"call_id": f"f{run}-{next(counter)}", "identity": identity()})

    return await interleaved(
        samples,
        {
            "product": lambda: repo.save_call(pending["product"], forced=True),
            "raw": lambda: raw.finalize(pending["raw"]),
        },
        warmup=10,
        before=prepare,
    )


async def recall_and_write(
    target: Path | str, raw: RawSqlite | RawPostgres, customers: int, samples: int, spool: Path
) -> dict[str, Any]:
    rng = random.Random(5)

    def identity() -> str:
        return regular_identity(rng.randint(1, customers))

    async with open_repository(target, spool_dir=spool) as repo:
        await repo.recovered()
        return {
            "recall": await recall_vs_raw(repo, raw, identity, samples),
            "write": await write_vs_raw(repo, raw, identity, max(10, samples // 4)),
        }


def export_source(cache_dir: Path, orders: int) -> Path:
    """The export benchmark's synthetic file of ``orders`` orders, built once and cached."""
    source = cache_dir / f"export-{orders}.db"
    if not source.exists():
        print(f"building {source} ({orders:,} orders)", flush=True)
        partial = source.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        build_synthetic_database(partial, orders=orders)
        os.replace(partial, source)
    return source


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    customers = args.customers or (300 if args.smoke else 10_000)
    samples = 100 if args.smoke else args.samples
    repeat = 1 if args.smoke else args.repeat
    orders = args.export_orders or (2_000 if args.smoke else 1_000_000)
    for spool in ("s", "p"):
        (folder / spool).mkdir()
    results: dict[str, Any] = {
        "plan": {"customers": customers, "samples": samples, "repeat": repeat, "export_orders": orders},
        "lines": {"db": python_lines("db"), "db+scripts": python_lines("db", "scripts")},
        "import": import_weight(EXPORT_MODULE),
    }
    built = cached_database(customers, args.cache_dir)
    source = export_source(args.cache_dir, orders)

    print("SQLite: recall and the end-of-call write", flush=True)
    raw_sqlite = RawSqlite(built.path)
    try:
        results["sqlite"] = asyncio.run(recall_and_write(built.path, raw_sqlite, customers, samples, folder / "s"))
    finally:
        raw_sqlite.close()
    print("SQLite: the export", flush=True)
    raw_export = RawSqlite(source)
    try:
        results["sqlite"]["export"] = export_against_raw(
            product_export(source), raw_export.export(), folder, repeat=repeat
        )
    finally:
        raw_export.close()

    with contextlib.ExitStack() as stack:
        admin = args.url or stack.enter_context(throwaway_server())
        url = stack.enter_context(fresh_database(admin))
        print(f"PostgreSQL: {redacted(admin)}; copying the recall database", flush=True)
        results["server"] = server_facts(url)
        results["postgres_copy"] = copy_into_postgres(built.path, url)
        print("PostgreSQL: recall and the end-of-call write", flush=True)
        raw_pg = RawPostgres(url)
        try:
            results["postgres"] = asyncio.run(recall_and_write(url, raw_pg, customers, samples, folder / "p"))
        finally:
            raw_pg.close()
        export_url = stack.enter_context(fresh_database(admin))
        print("PostgreSQL: copying the export's database", flush=True)
        results["postgres_export_copy"] = copy_into_postgres(source, export_url)
        print("PostgreSQL: the export", flush=True)
        raw_pg = RawPostgres(export_url)
        try:
            results["postgres"]["export"] = export_against_raw(
                product_export(export_url), raw_pg.export(), folder, repeat=repeat
            )
        finally:
            raw_pg.close()
    return results


def export_figures(export: dict[str, Any]) -> tuple[float, float | None]:
    tools = export["tools"]
    return tools["product"]["median_s"] / tools["raw"]["median_s"], tools["product"]["peak_mb"]


def render(results: dict[str, Any]) -> str:
    plan, server = results["plan"], results["server"]
    sqlite, postgres = results["sqlite"], results["postgres"]
    raw_tools = {"SQLite": "sqlite3 -csv", "PostgreSQL": "psql \\copy"}
    lines = [
        f"### The data layer against the raw drivers: {plan['customers']:,} customers,"
        f" export of {plan['export_orders']:,} orders",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {machine_line()}; load average {os.getloadavg()[0]:.1f}",
        f"- Server: {server['version']} on 127.0.0.1, {server['settings']}; psycopg {server['psycopg']}",
        f"- Lines of Python: `db/` {results['lines']['db']:,}; `db/` + `scripts/` {results['lines']['db+scripts']:,}",
        "",
        "Times in milliseconds (the export's in seconds); ratios against the raw driver in the same run.",
        "",
    ]
    for title, key in (("Recall: identity to memory text", "recall"), ("End-of-call write", "write")):
        for backend, figures in (("SQLite", sqlite), ("PostgreSQL", postgres)):
            lines += [f"{title}, {backend}", "", markdown_table(PAIR_HEADERS, pair_rows(figures[key])), ""]
    rows = []
    for backend, figures in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        for name, tool in figures["export"]["tools"].items():
            peak = "n/a" if tool["peak_mb"] is None else f"{tool['peak_mb']:.1f}"
            shown = "memory-agent export" if name == "product" else raw_tools[backend]
            rows.append([backend, shown, f"{tool['best_s']:.2f}", f"{tool['median_s']:.2f}", peak])
    lines += [
        f"Export ({sqlite['export']['orders']:,} orders, {sqlite['export']['bytes'] / 1e6:.0f} MB of CSV,"
        f" {plan['repeat']} run(s) each after a warm-up; the rows are checked to be the same)",
        "",
        markdown_table(("database", "tool", "best s", "median s", "peak RSS MB"), rows),
        "",
    ]
    weight = results["import"]
    heaviest = ", ".join(f"{name} {ms:.0f}" for name, ms in list(weight["packages"].items())[:8])
    lines += [
        f"Importing `{EXPORT_MODULE}`: {weight['total_ms']:.0f} ms; by package (ms of their own): {heaviest}",
        "",
    ]
    goal_rows = []
    for backend, figures in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        recall, write = ratio(figures["recall"]), ratio(figures["write"])
        export_ratio, peak_mb = export_figures(figures["export"])
        raw = raw_tools[backend]
        goal_rows += [
            [f"{backend}: recall p50 at most 2x raw", f"{recall:.2f}x", status(recall, GOALS["recall"])],
            [f"{backend}: end-of-call write p50 at most 1.5x raw", f"{write:.2f}x", status(write, GOALS["write"])],
            [
                f"{backend}: export at most 1.5x `{raw}` (median)",
                f"{export_ratio:.2f}x",
                status(export_ratio, GOALS["export"]),
            ],
            [
                f"{backend}: export under 64 MB",
                "n/a" if peak_mb is None else f"{peak_mb:.1f} MB",
                "n/a" if peak_mb is None else status(peak_mb, GOALS["export_mb"]),
            ],
        ]
    lines += ["Goals", "", markdown_table(("goal", "measured", "status"), goal_rows), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a server's database where this may create and drop one (default: its own)")
    parser.add_argument("--customers", type=int, help="regular customers in the synthetic database (10,000)")
    parser.add_argument("--smoke", action="store_true", help="300 customers, 2,000 orders, few samples: seconds")
    parser.add_argument("--samples", type=int, default=2000, help="recall samples per contender (2000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed export runs of each tool (3)")
    parser.add_argument("--export-orders", type=int, help="orders in the export's synthetic database (1,000,000)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "memory-agent-bench")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-layer-") as scratch:
        results = run(args, Path(scratch))
    text = render(results)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
