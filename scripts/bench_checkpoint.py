"""CPU of one turn's checkpoint early and late in a long call: does it grow with the call's length?

A real call (session, journal, SQLite file) whose history grows by one exchange per turn (the caller's
line and the agent's answer, added to the session's history as the session would). After each turn
the journal checkpoints, as it does when the agent answers, and the process's CPU time (every
thread: the snapshot, the database write or the spool's line) is measured until the checkpoint is
in the database, or in the spool. ``written``: the database takes every write; ``spooled``: another
connection holds the write lock, so every checkpoint goes to the spool. Prints one JSON object:
the median CPU milliseconds of the checkpoint at each turn asked for, and the spool's bytes.

    .venv/bin/python scripts/bench_checkpoint.py --turns 50 --calls 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from db import open_repository
from memory_agent import start_call
from memory_agent.call import CallConfig
from memory_agent.identity import Caller
from memory_agent.scripted_llm import Say, ScriptedLLM

LINE = "I'd like two margherita pizzas, one without basil, and a tiramisu for later, please"


async def one_call(path: Path, n: int, turns: int, *, locked: bool) -> tuple[list[float], int]:
    """CPU milliseconds of each turn's checkpoint, turn 1 first, and the bytes the turns added to the spool."""
    cpu: list[float] = []
    async with open_repository(path, busy_timeout_ms=50) as repo:
        await repo.recovered()
        spool = repo.spool_file
        call = await start_call(
            repo,
            Caller.typed(f"bench-checkpoint-{n}"),
            CallConfig(write_budget_s=0.05 if locked else 5.0),
            llm=ScriptedLLM([Say("Welcome to Bella Vista!")]),
            call_id=f"checkpoint-{n}",
        )
        assert call.greeting is not None
        await call.greeting
        await call.journal.flush()
        lock = sqlite3.connect(path, isolation_level=None) if locked else None
        if lock is not None:
            lock.execute("BEGIN IMMEDIATE")
        before = spool.stat().st_size if spool.exists() else 0
        try:
            for turn in range(1, turns + 1):
                history = call.session.history
                history.add_message(role="user", content=f"{LINE} ({turn})")
                history.add_message(role="assistant", content=f"Noted, {turn}: two margheritas and a tiramisu.")
                began = time.process_time()
                call.journal.checkpoint()
                await call.journal.saved()
                if lock is None:
                    await call.journal.flush()
                cpu.append((time.process_time() - began) * 1000)
            spooled = (spool.stat().st_size if spool.exists() else 0) - before
        finally:
            if lock is not None:
                lock.execute("ROLLBACK")
                lock.close()
        await call.journal.flush()
        await call.finish("caller_hung_up")
    return cpu, spooled


async def bench(turns: int, calls: int, at: list[int]) -> dict[str, Any]:
    report: dict[str, Any] = {"turns": turns, "calls": calls}
    for mode in ("written", "spooled"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "memory.db"
            runs = [await one_call(path, n, turns, locked=mode == "spooled") for n in range(calls)]
        report[mode] = {f"turn {t}": round(statistics.median(cpu[t - 1] for cpu, _ in runs), 2) for t in at}
        if mode == "spooled":
            report[mode]["spool bytes per call"] = round(statistics.median(spooled for _, spooled in runs))
    report["unit"] = "median CPU ms of one checkpoint (all threads), until in the database or the spool"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--calls", type=int, default=5, help="calls measured per mode (the median is shown)")
    args = parser.parse_args()
    logging.getLogger("memory_agent").setLevel(logging.ERROR)  # every checkpoint spooled is the point
    at = sorted({t for t in (5, args.turns // 2, args.turns) if 1 <= t <= args.turns})
    print(json.dumps(asyncio.run(bench(args.turns, args.calls, at))))


if __name__ == "__main__":
    main()
