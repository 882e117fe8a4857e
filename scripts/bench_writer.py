"""One writer process of the concurrent-finalize benchmark (started by bench.py, not by hand).

Opens the product's repository, prints ``ready``, waits for a line on stdin, then writes
finished calls (``save_call(final snapshot, forced=True)``) of random regular callers for
``--seconds`` and prints one JSON line: calls, errors, the worst wait, elapsed time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid

from bench_data import regular_identity
from bench_workload import finished_call

from db import open_repository


async def run(path: str, customers: int, seconds: float, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    template = finished_call("template", regular_identity(1))
    prefix = uuid.uuid4().hex[:12]
    calls = errors = 0
    worst = 0.0
    first_error = None
    async with open_repository(path) as repo:
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
    return {
        "calls": calls,
        "errors": errors,
        "worst_s": worst,
        "elapsed_s": elapsed,
        "first_error": first_error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.path, args.customers, args.seconds, args.seed))), flush=True)


if __name__ == "__main__":
    main()
