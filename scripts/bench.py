"""Memory at the speed of SQLite: the product's recall and write paths against raw sqlite3.

    python scripts/bench.py --smoke                 # seconds; what CI runs
    python scripts/bench.py --customers 1000000     # by hand; builds a ~12 GB file once, then cached

Builds (or reuses) a synthetic database, then measures, with product and reference interleaved:
recall, recall by history length, finalize, concurrent finalize, the greeting's time to its LLM
request, the memory text's size, and whole scripted calls: write transactions per call, database
time per call (against a repository that does nothing) and the files' size after many calls.
Prints a table and writes the figures into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_calls import bench_db_time, bench_file_sizes, bench_greeting, bench_write_counts, percentiles
from bench_data import SPECIAL_ORDER_COUNTS, cached_database, regular_identity, special_identity
from bench_fsync import traced_fsyncs
from bench_report import render, update_document
from bench_workload import REFERENCE_RECALL_SQL, finished_call, open_raw, raw_finalize

from db import CallSnapshot, SqliteRepository, open_sqlite_repository
from memory_agent.memory import memory_text

ROOT = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).resolve().parent / "bench_writer.py"
PROCESS_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Plan:
    customers: int
    recall_samples: int
    finalize_samples: int
    greeting_calls: int
    writer_seconds: float
    count_pairs: int  # new/returning call pairs whose write transactions are counted
    db_time_calls: int  # whole calls through each repository, real and null
    file_calls: int  # whole calls written to a fresh database before its files are measured
    strace: bool


def plan_for(args: argparse.Namespace) -> Plan:
    if args.smoke:
        return Plan(
            customers=args.customers or 1000,
            recall_samples=200,
            finalize_samples=40,
            greeting_calls=10,
            writer_seconds=0.3,
            count_pairs=1,
            db_time_calls=2,
            file_calls=10,
            strace=not args.no_strace,
        )
    return Plan(
        customers=args.customers or 10_000,
        recall_samples=args.samples,
        finalize_samples=args.samples // 4,
        greeting_calls=args.greeting_calls,
        writer_seconds=args.writer_seconds,
        count_pairs=args.count_pairs,
        db_time_calls=args.calls,
        file_calls=args.file_calls,
        strace=not args.no_strace,
    )


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def interleaved(
    samples: int, contenders: dict[str, Callable[[], Awaitable[object]]], *, warmup: int = 20
) -> dict[str, dict[str, float]]:
    """Run the contenders in turn (rotating who goes first) and return each one's percentiles."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + samples):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            elapsed = await timed(contenders[name])
            if i >= warmup:
                times[name].append(elapsed)
    return {name: percentiles(values) for name, values in times.items()}


def sync(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return fn()

    return run


async def bench_recall(repo: SqliteRepository, raw: Any, plan: Plan, rng: random.Random) -> dict[str, Any]:
    def identity() -> str:
        return regular_identity(rng.randint(1, plan.customers))

    async def product() -> None:
        memory_text(await repo.recall(identity()))

    def reference() -> None:
        raw.execute(REFERENCE_RECALL_SQL, {"identity": identity()}).fetchall()

    async def hop() -> None:
        await repo.reader.execute_fetchall("SELECT 1")

    return await interleaved(plan.recall_samples, {"product": product, "raw": sync(reference), "hop": hop})


async def bench_history(repo: SqliteRepository, plan: Plan) -> dict[str, Any]:
    async def path_for(orders: int) -> None:
        memory_text(await repo.recall(special_identity(orders)))

    return await interleaved(
        plan.recall_samples, {"1 order": lambda: path_for(1), "1000 orders": lambda: path_for(1000)}
    )


async def bench_finalize(repo: SqliteRepository, raw: Any, plan: Plan, rng: random.Random) -> dict[str, Any]:
    template = finished_call("template", regular_identity(1))
    run = uuid.uuid4().hex[:10]
    counter = iter(range(10**9))

    def snapshot() -> CallSnapshot:
        return template.model_copy(
            update={"call_id": f"f{run}-{next(counter)}", "identity": regular_identity(rng.randint(1, plan.customers))}
        )

    # Snapshots are built before the clock starts: save_call's own cost is what is measured.
    async def product() -> None:
        await repo.save_call(pending["product"], forced=True)

    def reference() -> None:
        raw_finalize(raw, pending["raw"])

    pending: dict[str, CallSnapshot] = {}
    names = ["product", "raw"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(10 + plan.finalize_samples):
        for name in names[i % 2 :] + names[: i % 2]:
            pending[name] = snapshot()
            elapsed = await timed(product if name == "product" else sync(reference))
            if i >= 10:
                times[name].append(elapsed)
    return {name: percentiles(values) for name, values in times.items()}


def bench_concurrency(path: Path, plan: Plan) -> list[dict[str, Any]]:
    rows = []
    for count in PROCESS_COUNTS:
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(WRITER),
                    str(path),
                    "--customers",
                    str(plan.customers),
                    "--seconds",
                    str(plan.writer_seconds),
                    "--seed",
                    str(n),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(count)
        ]
        for writer in writers:
            assert writer.stdout is not None
            if writer.stdout.readline().strip() != "ready":
                raise RuntimeError("a writer process failed to start")
        for writer in writers:  # all start together
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = []
        for writer in writers:
            out, _ = writer.communicate(timeout=plan.writer_seconds + 120)
            results.append(json.loads(out.strip().splitlines()[-1]))
        calls = sum(r["calls"] for r in results)
        rows.append(
            {
                "processes": count,
                "calls": calls,
                "calls_per_s": calls / max(r["elapsed_s"] for r in results),
                "errors": sum(r["errors"] for r in results),
                "worst_wait_ms": max(r["worst_s"] for r in results) * 1000,
                "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
            }
        )
    return rows


async def bench_text_size(repo: SqliteRepository, raw: Any) -> list[dict[str, Any]]:
    rows = []
    for orders in SPECIAL_ORDER_COUNTS:
        identity = special_identity(orders)
        text = memory_text(await repo.recall(identity))
        naive = naive_dump(raw, identity)
        rows.append({"orders": orders, "memory_chars": len(text), "naive_chars": len(naive)})
    return rows


def naive_dump(raw: Any, identity: str) -> str:
    """What a memory layer that forwards the whole history would give the LLM: every order as JSON."""
    orders = raw.execute(
        "SELECT o.id, o.created_at, o.status, o.total_cents, o.payment_method, f.rating, f.comment"
        " FROM orders AS o JOIN customers AS c ON c.id = o.customer_id"
        " LEFT JOIN feedback AS f ON f.call_id = o.call_id WHERE c.participant_identity = ? ORDER BY o.id",
        (identity,),
    ).fetchall()
    dump = []
    for order_id, created_at, status, total, payment, rating, comment in orders:
        items = raw.execute(
            "SELECT name, quantity, unit_price_cents, modifications FROM order_items WHERE order_id = ?"
            " ORDER BY position",
            (order_id,),
        ).fetchall()
        dump.append(
            {
                "date": created_at,
                "status": status,
                "total_cents": total,
                "payment": payment,
                "items": [
                    {"name": n, "quantity": q, "unit_price_cents": p, "modifications": json.loads(m)}
                    for n, q, p, m in items
                ],
                "feedback": {"rating": rating, "comment": comment} if rating is not None else None,
            }
        )
    return json.dumps(dump, ensure_ascii=False)


async def run(plan: Plan, cache_dir: Path, rebuild: bool, seed: int) -> dict[str, Any]:
    print(f"database: {plan.customers:,} customers (cache {cache_dir})", flush=True)
    built = cached_database(plan.customers, cache_dir, rebuild=rebuild)
    how = "from cache" if built.cached else "built now"
    print(f"  {built.path} ({built.size_bytes / 1e9:.2f} GB, {how})", flush=True)
    rng = random.Random(seed)
    results: dict[str, Any] = {
        "plan": plan.__dict__,
        "database": {
            "path": str(built.path),
            "size_bytes": built.size_bytes,
            "build_seconds": built.build_seconds,
            "cached": built.cached,
        },
    }
    raw = open_raw(built.path)
    try:
        async with open_sqlite_repository(built.path) as repo:
            if repo.recovery is not None:
                await repo.recovery
            gc.collect()
            print("1. recall", flush=True)
            results["recall"] = await bench_recall(repo, raw, plan, rng)
            print("2. recall by history length", flush=True)
            results["history"] = await bench_history(repo, plan)
            print("3. finalize", flush=True)
            results["finalize"] = await bench_finalize(repo, raw, plan, rng)
            print("5. greeting", flush=True)
            callers = [regular_identity(rng.randint(1, plan.customers)) for _ in range(1000)]
            results["greeting"] = await bench_greeting(repo, callers, plan.greeting_calls)
            print("6. memory text size", flush=True)
            results["text_size"] = await bench_text_size(repo, raw)
            print("7. write transactions per call", flush=True)
            results["write_counts"] = await bench_write_counts(repo, plan.count_pairs)
            print("8. database time per call", flush=True)
            results["db_time"] = await bench_db_time(repo, plan.db_time_calls)
    finally:
        raw.close()
    print("4. concurrent finalize", flush=True)
    results["concurrency"] = bench_concurrency(built.path, plan)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        print(f"9. files after {plan.file_calls:,} calls", flush=True)
        results["files"] = await bench_file_sizes(Path(scratch) / "files.db", plan.file_calls)
        if plan.strace:
            print("7. fsyncs per call (strace)", flush=True)
            fsync_dir = Path(scratch) / "fsync"
            fsync_dir.mkdir()
            results["fsyncs"] = await asyncio.to_thread(traced_fsyncs, fsync_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, help="regular customers in the synthetic database (10,000)")
    parser.add_argument("--smoke", action="store_true", help="1,000 customers and few samples: seconds")
    parser.add_argument("--samples", type=int, default=2000, help="recall samples per contender (2000)")
    parser.add_argument("--greeting-calls", type=int, default=200, help="calls per greeting variant (200)")
    parser.add_argument("--writer-seconds", type=float, default=5.0, help="seconds per concurrency level (5)")
    parser.add_argument("--count-pairs", type=int, default=20, help="new/returning pairs whose writes are counted (20)")
    parser.add_argument(
        "--calls", type=int, default=400, help="whole calls per repository and LLM pace, database time (400)"
    )
    parser.add_argument("--file-calls", type=int, default=1000, help="whole calls before the files are measured (1000)")
    parser.add_argument("--no-strace", action="store_true", help="do not count fsyncs with strace")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "memory-agent-bench")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the synthetic database")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="document to update")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("memory_agent").setLevel(logging.WARNING)

    plan = plan_for(args)
    results = asyncio.run(run(plan, args.cache_dir, args.rebuild, args.seed))
    table, block = render(results, smoke=args.smoke)
    print(table)
    update_document(args.out, plan.customers, args.smoke, block)
    print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
