"""fsync and fdatasync system calls of one call, counted by strace in a process of its own.

``traced_fsyncs`` (called by bench.py) runs this file under ``strace -f``: the child opens a fresh
database, plays a warm-up pair of calls, then a new caller's call and the same caller's return
call, each between two marker ``access()`` calls on a path that does not exist. The parent counts
the fsync and fdatasync lines between the markers, by file (``-y`` names each descriptor's file).
Returns None when strace is missing or cannot trace (ptrace is often not permitted in containers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

MARKER = "/nonexistent-bench-fsync-marker"
_MARK = re.compile(re.escape(MARKER) + r"/([\w-]+)")
_SYNC = re.compile(r"\b(fsync|fdatasync)\(\d+(?:<([^>]*)>)?")


def mark(name: str) -> None:
    """A system call strace shows with ``name`` in it (the path does not exist, nothing happens)."""
    os.access(f"{MARKER}/{name}", os.F_OK)


async def child(path: Path) -> dict[str, int]:
    from bench_calls import NEW_CALLER, RETURNING_CALLER, scripted_call, settled

    from db import open_repository

    async with open_repository(path) as repo:
        await settled(repo)
        await scripted_call(repo, "bench-fsync-warmup", NEW_CALLER)
        await scripted_call(repo, "bench-fsync-warmup", RETURNING_CALLER)
        for script in (NEW_CALLER, RETURNING_CALLER):
            key = script.kind.replace(" ", "-")
            mark(f"{key}-begin")
            await scripted_call(repo, "bench-fsync-caller", script)
            mark(f"{key}-end")
        return dict(repo.write_counts)


# A real model's pace: each LLM answer takes this long, so a call's turns are seconds apart.
PACED_STEP_S = 0.8
# Longer than the repository waits, idle, before it checkpoints the WAL (2 s), so that checkpoint is counted.
IDLE_S = 3.0


async def paced_child(path: Path, calls: int) -> dict[str, int]:
    """``calls`` calls one after another at a real model's pace, new and returning callers in turn,
    between one pair of markers; the checkpoint the last one leaves is counted too."""
    from bench_calls import NEW_CALLER, RETURNING_CALLER, scripted_call, settled

    from db import open_repository

    async with open_repository(path) as repo:
        await settled(repo)
        await scripted_call(repo, "bench-fsync-warmup", NEW_CALLER)
        await asyncio.sleep(IDLE_S)
        mark("paced-begin")
        for n in range(calls):
            script = NEW_CALLER if n % 2 == 0 else RETURNING_CALLER
            await scripted_call(repo, f"bench-fsync-paced-{n // 2}", script, step_s=PACED_STEP_S)
        await asyncio.sleep(IDLE_S)
        mark("paced-end")
        return dict(repo.write_counts)


def count(trace: str) -> dict[str, dict[str, int]]:
    """Sync calls between each ``<kind>-begin`` and ``<kind>-end`` marker, by the file synced."""
    counts: dict[str, dict[str, int]] = {}
    current: str | None = None
    for line in trace.splitlines():
        if (marker := _MARK.search(line)) is not None:
            name = marker.group(1)
            if name.endswith("-begin"):
                current = name.removesuffix("-begin")
                counts[current] = {"total": 0, "wal": 0, "main": 0, "other": 0}
            elif name.endswith("-end"):
                current = None
            continue
        if current is None or (sync := _SYNC.search(line)) is None:
            continue
        target = sync.group(2) or ""
        where = "wal" if target.endswith("-wal") else "main" if target.endswith(".db") else "other"
        counts[current]["total"] += 1
        counts[current][where] += 1
    return counts


def traced_fsyncs(work_dir: Path, *, paced_calls: int = 0) -> dict[str, Any] | None:
    """Per call kind, the sync calls of one call (strace), or None if strace is absent or fails.

    ``paced_calls``: instead, the sync calls of that many calls at a real model's pace, in total."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    out = work_dir / "strace.txt"
    command = [
        strace,
        "-f",
        "--seccomp-bpf",
        "-y",
        "-e",
        "trace=fsync,fdatasync,access,faccessat,faccessat2",
        "-o",
        str(out),
        sys.executable,
        str(Path(__file__).resolve()),
        str(work_dir / "fsync.db"),
        *(["--paced-calls", str(paced_calls)] if paced_calls else []),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=work_dir)
        if done.returncode != 0:
            return None
        counts = count(out.read_text())
        written = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    if set(counts) != ({"paced"} if paced_calls else {"new-caller", "returning-caller"}):
        return None
    return {"calls": counts, "write_counts": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--paced-calls", type=int, default=0, help="that many calls at a real model's pace")
    args = parser.parse_args()
    work = paced_child(args.path, args.paced_calls) if args.paced_calls else child(args.path)
    print(json.dumps(asyncio.run(work)), flush=True)


if __name__ == "__main__":
    main()
