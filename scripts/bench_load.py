"""The dinner rush: P worker processes x C concurrent paced calls of returning callers on one SQLite file.

Each call greets, hears the caller's name, takes an order and places it, at a scripted LLM's pace;
optionally with a busy loop on every core. Measured: how many callers were recognized by the time
they said their name, seconds from "placed" (the order tool has returned: the call tells the caller
so next) to the order's row being readable by another connection (p50/p99), the spool's depth over
time, the time to the greeting, and disk flushes are left to ``bench_fsync.py --paced-calls``.
Prints one JSON object.

    .venv/bin/python scripts/bench_load.py --processes 4 --calls 50 --step-s 0.8 --busy

``--job-start N`` times only what a job's start costs before its greeting (see ``job_start``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from bench_calls import PacedLLM
from harness import percentile
from livekit.agents import FunctionToolsExecutedEvent

from db import CallSnapshot, Order, OrderLine, open_repository
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.scripted_llm import Say, Step, ToolCall

SPAWN = multiprocessing.get_context("spawn")
LINES = ["Hi, it's {name}", "Two margheritas and a tiramisu", "Yes, place it"]


def steps(name: str) -> list[Step]:
    return [
        Say("Welcome to Bella Vista!"),
        ToolCall("save_customer_name", {"name": name}),
        Say(f"Welcome back, {name}! What would you like?"),
        (
            ToolCall("add_to_order", {"item": "margherita", "quantity": 2}),
            ToolCall("add_to_order", {"item": "tiramisu"}),
        ),
        Say("Two Margherita Pizzas and a Tiramisu. Anything else?"),
        ToolCall("confirm_order"),
        Say("Placed!"),
    ]


def caller(worker: int, n: int) -> tuple[str, str]:
    return f"load-{worker}-{n}", f"Guest {worker} {n}"


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


async def seed(path: Path, processes: int, calls: int) -> Path:
    """Every caller has called before: a name and a placed order on file. The database's spool file."""
    async with open_repository(path) as repo:
        for worker in range(processes):
            for n in range(calls):
                key, name = caller(worker, n)
                await repo.save_call(
                    CallSnapshot(
                        call_id=f"before-{key}",
                        identity=key,
                        caller_name=name,
                        started_at=utcnow_iso(),
                        order=Order(
                            status="placed",
                            items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)],
                        ),
                    )
                )
        return repo.spool_file


def worker_process(path: str, worker: int, calls: int, step_s: float, start: Barrier, results: Queue) -> None:
    async def one(repo: Any, n: int) -> dict[str, Any]:
        key, name = caller(worker, n)
        began = time.monotonic()
        call = await start_call(repo, Caller.typed(key), llm=PacedLLM(steps(name), step_s=step_s), call_id=f"{key}-now")
        placed: list[float] = []

        def on_tools(event: FunctionToolsExecutedEvent) -> None:
            if any(c.name == "confirm_order" for c in event.function_calls):
                placed.append(time.time())

        call.session.on("function_tools_executed", on_tools)
        assert call.greeting is not None
        await call.greeting
        greeted_s = time.monotonic() - began
        await call.session.run(user_input=LINES[0].format(name=name))
        recognized = call.userdata.memory is not None and call.userdata.memory.name == name
        for line in LINES[1:]:
            await call.session.run(user_input=line)
        placed_at = placed[0] if placed else time.time()
        await call.finish("caller_hung_up")
        return {"call_id": call.call_id, "recognized": recognized, "greeted_s": greeted_s, "placed_at": placed_at}

    async def run() -> list[dict[str, Any]]:
        async with open_repository(path) as repo:
            await repo.recovered()
            start.wait()
            done = await asyncio.gather(*(one(repo, n) for n in range(calls)))
            # the drainer writes what was spooled: stay open until every order is readable
            ids = [d["call_id"] for d in done]
            while True:
                found = await repo.read(
                    f"SELECT count(*) FROM orders WHERE status = 'placed' AND call_id IN ({','.join('?' * len(ids))})",
                    ids,
                )
                if found[0][0] == len(ids):
                    done[0]["write_counts"] = dict(repo.write_counts)
                    return done
                await asyncio.sleep(0.1)

    results.put(asyncio.run(run()))


def spin(stop: Event) -> None:
    while not stop.is_set():
        for _ in range(100_000):
            pass


def watch(path: Path, spool: Path, call_ids_seen: dict[str, float], depth: list[tuple[float, int]], t0: float) -> None:
    """One look: when each placed order became readable, and how many lines the spool holds."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        now = time.time()
        for (call_id,) in conn.execute("SELECT call_id FROM orders WHERE status = 'placed' AND call_id LIKE '%-now'"):
            call_ids_seen.setdefault(call_id, now)
    finally:
        conn.close()
    lines = len(spool.read_bytes().splitlines()) if spool.exists() else 0
    depth.append((round(time.time() - t0, 1), lines))


class NullRepository:
    """A repository that keeps nothing and knows no one: the reference for what the database adds."""

    spool_file = Path(os.devnull)

    async def household(self, caller: str) -> tuple[()]:
        return ()

    async def read(self, sql: str, params: Any) -> list[Any]:
        return []

    async def close_stale_calls(self, **kwargs: Any) -> list[str]:
        return []

    async def identity_attempts(self, caller: str, *, since: str) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        return nothing


async def job_start(db: str, jobs: int, spool_dir: str) -> dict[str, Any]:
    """Seconds from a job's start to its greeting, per call, as the worker's entrypoint gets its repository:
    opened by the job itself (every call migrating, recovering, purging and draining, as before), or
    attached once by its prewarmed process; against a null repository, in the same run, as the reference."""
    from contextlib import AsyncExitStack

    from livekit.agents import JobExecutorType, JobProcess
    from livekit.agents.testing import fake_job_context

    from memory_agent.process_database import ProcessDatabase
    from memory_agent.settings import Settings
    from memory_agent.worker import DATABASE, job_repository

    settings = Settings.model_validate({"MEMORY_AGENT_DB": db, "MEMORY_AGENT_SPOOL_DIR": spool_dir})
    async with settings.repository() as repo:  # the worker's process, with a year of calls on file
        await repo.recovered()
        for n in range(jobs * 20):
            await repo.save_call(CallSnapshot(call_id=f"past-{n}", identity=f"past-{n % 50}", started_at=utcnow_iso()))
    process = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    process.userdata[DATABASE] = database = ProcessDatabase(settings)
    await database.repository()  # opened while the process waited in LiveKit's pool
    times: dict[str, list[float]] = {"null": [], "per_job": [], "prewarmed": []}
    for n in range(jobs):
        for variant, times_of in times.items():
            with fake_job_context() as ctx:
                if variant == "prewarmed":
                    ctx.proc.userdata.update(process.userdata)
                resources = AsyncExitStack()
                began = time.monotonic()
                repo = NullRepository() if variant == "null" else await job_repository(ctx, settings, resources)
                name = f"Guest {n}"
                call = await start_call(repo, Caller.typed(f"job-{n}"), llm=PacedLLM(steps(name), step_s=0))
                assert call.greeting is not None
                await call.greeting
                times_of.append(time.monotonic() - began)
                await call.finish("caller_hung_up")
                await resources.aclose()
    await database.aclose()
    p50 = {variant: statistics.median(values) for variant, values in times.items()}
    return {
        "jobs": jobs,
        "greeting_ms_p50": {variant: round(value * 1000, 1) for variant, value in p50.items()},
        "greeting_ms_p90": {variant: round(percentile(values, 0.9) * 1000, 1) for variant, values in times.items()},
        "greeting_ms_max": {variant: round(max(values) * 1000, 1) for variant, values in times.items()},
        "per_job_over_null": round(p50["per_job"] / p50["null"], 2),
        "prewarmed_over_null": round(p50["prewarmed"] / p50["null"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=50, help="concurrent calls per process")
    parser.add_argument("--step-s", type=float, default=0.8, help="seconds per LLM answer")
    parser.add_argument("--busy", action="store_true", help="a busy loop on every core")
    parser.add_argument("--job-start", type=int, metavar="N", help="only time N jobs' start to their greeting")
    parser.add_argument("--db", help="for --job-start: a PostgreSQL URL instead of a SQLite file")
    args = parser.parse_args()
    if args.job_start:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(job_start(args.db or str(Path(tmp) / "memory.db"), args.job_start, tmp))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory.db"
        spool = asyncio.run(seed(path, args.processes, args.calls))
        start, results = SPAWN.Barrier(args.processes + 1), SPAWN.Queue()
        stop = SPAWN.Event()
        spinners = [SPAWN.Process(target=spin, args=(stop,)) for _ in range(os.cpu_count() or 2)] if args.busy else []
        workers = [
            SPAWN.Process(target=worker_process, args=(str(path), w, args.calls, args.step_s, start, results))
            for w in range(args.processes)
        ]
        for process in [*spinners, *workers]:
            process.start()
        start.wait()
        t0 = time.time()
        seen: dict[str, float] = {}
        depth: list[tuple[float, int]] = []
        done: list[dict[str, Any]] = []
        while len(done) < args.processes * args.calls:
            watch(path, spool, seen, depth, t0)
            try:
                done += results.get(timeout=0.05)
            except Exception:  # noqa: BLE001  (queue.Empty: nothing yet)
                pass
        watch(path, spool, seen, depth, t0)
        stop.set()
        for process in [*spinners, *workers]:
            process.join()

    lags = [max(0.0, seen[d["call_id"]] - d["placed_at"]) for d in done if d["call_id"] in seen]
    report = {
        "processes": args.processes,
        "calls_per_process": args.calls,
        "step_s": args.step_s,
        "busy": args.busy,
        "recognized": f"{sum(d['recognized'] for d in done)}/{len(done)}",
        "placed_to_readable_s": {
            "p50": round(percentile(lags, 0.5), 3),
            "p99": round(percentile(lags, 0.99), 3),
            "n": len(lags),
        },
        "greeting_s": {
            "p50": round(percentile([d["greeted_s"] for d in done], 0.5), 3),
            "p99": round(percentile([d["greeted_s"] for d in done], 0.99), 3),
        },
        "spool_depth_max": max((n for _, n in depth), default=0),
        "transactions": {
            kind: sum(d.get("write_counts", {}).get(kind, 0) for d in done) for kind in ("forced", "relaxed", "grouped")
        },
        "spool_depth_over_time": depth[:: max(1, len(depth) // 20)],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
