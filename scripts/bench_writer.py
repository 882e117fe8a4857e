"""One writer process of the concurrent-finalize benchmarks (started by bench.py and bench_postgres.py).

Opens the product's repository on a SQLite file or a PostgreSQL URL, prints ``ready``, waits for a
line on stdin, then writes finished calls (``save_call(final snapshot, forced=True)``) of random
regular callers for ``--seconds`` and prints one JSON line: calls, errors, the worst wait, elapsed
time. ``concurrent_writers`` starts several and releases them together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_data import finished_call, regular_identity
from harness import released_together

from db import is_postgres_url, open_repository


async def run(target: str, customers: int, seconds: float, seed: int, host_id: str | None) -> dict[str, object]:
    rng = random.Random(seed)
    template = finished_call("template", regular_identity(1))
    prefix = uuid.uuid4().hex[:12]
    calls = errors = 0
    worst = 0.0
    first_error = None
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as folder:
        # PostgreSQL's spool is a local folder; SQLite's stays beside its file, as in the product.
        spool = folder if is_postgres_url(target) else None
        async with open_repository(target, spool_dir=spool, host_id=host_id) as repo:
            await repo.recovered()
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            started = time.perf_counter()
            deadline = started + seconds
            while (now := time.perf_counter()) < deadline:
                snap = template.model_copy(
                    update={
                        "call_id": f"w{prefix}-{calls + errors}",
                        "identity": regular_identity(rng.randint(1, customers)),
                    }
                )
                try:
                    await repo.save_call(snap, forced=True)
                    calls += 1
                except Exception as exc:  # every failure counts; the benchmark reports them
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                worst = max(worst, time.perf_counter() - now)
            elapsed = time.perf_counter() - started
    return {"calls": calls, "errors": errors, "worst_s": worst, "elapsed_s": elapsed, "first_error": first_error}


def concurrent_writers(
    target: str | Path, counts: tuple[int, ...], customers: int, seconds: float, *, hosts: int = 0
) -> list[dict[str, Any]]:
    """For each process count, that many writers released together on ``target``; ``hosts``: as that
    many hosts (host ids alternate). A row per count: calls per second, calls, errors, the worst wait."""
    rows = []
    for count in counts:
        command = [sys.executable, __file__, str(target), "--customers", str(customers), "--seconds", str(seconds)]
        results = released_together(
            [
                [*command, "--seed", str(n), *(["--host-id", f"bench-host-{n % hosts}"] if hosts else [])]
                for n in range(count)
            ],
            timeout=seconds + 120,
        )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="a SQLite file or a PostgreSQL URL")
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host-id", help="this process's host, on PostgreSQL")
    args = parser.parse_args()
    result = asyncio.run(run(args.target, args.customers, args.seconds, args.seed, args.host_id))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
