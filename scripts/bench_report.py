"""The benchmark's report: a plain table for the terminal and a Markdown block for BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

SECTION_TITLES = (
    "1. Recall: identity to memory text",
    "2. Recall by history length",
    "3. Finalize: one finished call",
    "4. Concurrent finalize",
    "5. Greeting: added time to the first LLM request",
    "6. Memory text size",
    "Goals",
)
PAIR_HEADERS = ["path", "p50", "p99", "p50 vs raw", "p99 vs raw", "samples"]


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "?"

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "aiosqlite": version("aiosqlite"),
        "livekit-agents": version("livekit-agents"),
        "pydantic": version("pydantic"),
    }


def goals(results: dict[str, Any]) -> list[tuple[str, str, bool, str]]:
    """(goal, measured, met, margin) for each goal of the issue that this suite measures."""
    rec, hist, fin = results["recall"], results["history"], results["finalize"]
    conc = {row["processes"]: row for row in results["concurrency"]}
    recall_ratio = rec["product"]["p50_ms"] / rec["raw"]["p50_ms"]
    history_ratio = hist["1000 orders"]["p50_ms"] / hist["1 order"]["p50_ms"]
    finalize_ratio = fin["product"]["p50_ms"] / fin["raw"]["p50_ms"]
    scaling = conc[4]["calls_per_s"] / conc[1]["calls_per_s"] if conc[1]["calls_per_s"] else 0.0
    overhead = results["greeting"]["overhead_p99_ms"]
    longest = max(row["memory_chars"] for row in results["text_size"])
    rows = [
        ("recall p50 within 2x of raw", f"{recall_ratio:.2f}x", recall_ratio <= 2.0, recall_ratio / 2.0),
        ("1,000-order caller at most 1.2x a 1-order caller (p50)", f"{history_ratio:.2f}x",
         history_ratio <= 1.2, history_ratio / 1.2),
        ("finalize p50 within 3x of raw", f"{finalize_ratio:.2f}x", finalize_ratio <= 3.0,
         finalize_ratio / 3.0),
        ("zero errors at 8 writer processes", f"{conc[8]['errors']} errors", conc[8]["errors"] == 0, None),
        ("4 processes at least 70% of 1-process throughput", f"{scaling:.0%}", scaling >= 0.70,
         0.70 / scaling if scaling else None),
        ("greeting overhead of memory under 5 ms p99", f"{overhead:.2f} ms", overhead < 5.0, overhead / 5.0),
        ("memory text at most 1,500 characters", f"{longest} chars", longest <= 1500, longest / 1500),
    ]
    out = []
    for goal, measured, met, factor in rows:
        margin = "met" if met else (f"missed by {factor - 1:.0%}" if factor else "missed")
        out.append((goal, measured, met, margin))
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _pair_rows(stats: dict[str, dict[str, float]], reference: str) -> list[list[str]]:
    base = stats[reference]
    return [
        [name, _ms(s["p50_ms"]), _ms(s["p99_ms"]), f"{s['p50_ms'] / base['p50_ms']:.2f}x",
         f"{s['p99_ms'] / base['p99_ms']:.2f}x", str(int(s["n"]))]
        for name, s in stats.items()
    ]


def render(results: dict[str, Any], *, smoke: bool) -> tuple[str, str]:
    """The terminal table and the Markdown block for one run."""
    plan, db = results["plan"], results["database"]
    info = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    build = f"{db['build_seconds']:.0f} s" if db["build_seconds"] is not None else "unknown"
    label = f"{plan['customers']:,} customers" + (" (smoke)" if smoke else "")
    parts = [
        f"### Results: {label}",
        "",
        f"- Date: {when}",
        f"- Machine: {info['cpu']}, {info['memory']} RAM; {info['os']}",
        f"- Versions: Python {info['python']}, SQLite {info['sqlite']}, aiosqlite {info['aiosqlite']}, "
        f"livekit-agents {info['livekit-agents']}, pydantic {info['pydantic']}",
        f"- Database: {plan['customers']:,} customers with about ten orders each,"
        f" {db['size_bytes'] / 1e9:.2f} GB;"
        f" built in {build}" + (" (reused from the cache)" if db["cached"] else ""),
        "",
        "Times in milliseconds; ratios against the reference measured in the same run.",
        "",
        f"#### {SECTION_TITLES[0]}",
        "",
        "`product` is `Repository.recall` + `memory_text` on a random caller; `raw` is the same lookup"
        " as one statement on a plain `sqlite3` connection; `hop` is an empty round trip to aiosqlite's"
        " thread, the floor of any awaited database call.",
        "",
        _table(PAIR_HEADERS, _pair_rows(results["recall"], "raw")),
        "",
        f"#### {SECTION_TITLES[1]}",
        "",
        "The product path for named callers whose last orders have the same three items.",
        "",
        _table(["caller", "p50", "p99", "p50 vs 1 order", "p99 vs 1 order", "samples"],
               _pair_rows(results["history"], "1 order")),
        "",
        f"#### {SECTION_TITLES[2]}",
        "",
        "An order of 5 items, feedback and 60 messages: `Repository.finalize_call` against a raw"
        " `sqlite3` transaction writing the same rows, with the same PRAGMAs (WAL, synchronous FULL,"
        " foreign keys).",
        "",
        _table(PAIR_HEADERS, _pair_rows(results["finalize"], "raw")),
        "",
        f"#### {SECTION_TITLES[3]}",
        "",
        "Separate processes, each finalizing calls through its own repository for"
        f" {plan['writer_seconds']} s.",
        "",
        _table(
            ["processes", "calls/s", "vs 1 process", "calls", "errors", "worst wait (ms)"],
            [
                [str(r["processes"]), f"{r['calls_per_s']:.0f}",
                 f"{r['calls_per_s'] / results['concurrency'][0]['calls_per_s']:.0%}", str(r["calls"]),
                 str(r["errors"]), _ms(r["worst_wait_ms"])]
                for r in results["concurrency"]
            ],
        ),
    ]
    errors = [r["first_error"] for r in results["concurrency"] if r["first_error"]]
    if errors:
        parts += ["", f"First error seen: `{errors[0]}`"]
    greet = results["greeting"]
    parts += [
        "",
        f"#### {SECTION_TITLES[4]}",
        "",
        "From `start_call` to the greeting's LLM request (scripted LLM), memory on against"
        " `memory_enabled=False`, alternating, same callers' distribution.",
        "",
        _table(
            ["agent chain", "p50", "p99", "calls"],
            [[name, _ms(greet[name]["p50_ms"]), _ms(greet[name]["p99_ms"]), str(int(greet[name]["n"]))]
             for name in ("memory", "no memory")]
            + [["added by memory", _ms(greet["overhead_p50_ms"]), _ms(greet["overhead_p99_ms"]), ""]],
        ),
        "",
        "Added at p99 is the larger of the two p99s' difference and p99 with memory minus p50"
        " without: an upper bound, since the difference of two p99s alone is noisy.",
        "",
        f"#### {SECTION_TITLES[5]}",
        "",
        "Characters of the memory text the Greeter's instructions receive, against a naive JSON dump"
        " of the caller's whole order history.",
        "",
        _table(
            ["past orders", "memory text", "naive dump"],
            [[f"{r['orders']:,}", f"{r['memory_chars']:,}", f"{r['naive_chars']:,}"]
             for r in results["text_size"]],
        ),
        "",
        f"#### {SECTION_TITLES[6]}",
        "",
        "Export figures are in the Export section.",
        "",
        _table(["goal", "measured", "status"],
               [[goal, measured, margin] for goal, measured, _, margin in goals(results)]),
    ]
    if plan["customers"] < 1_000_000:
        parts += ["", "The recall goal is set at 1,000,000 customers; at this scale it is indicative only."]
    block = "\n".join(parts) + "\n"
    return _plain(block), block


def _plain(markdown: str) -> str:
    """The Markdown block, lightly cleaned for a terminal."""
    text = re.sub(r"^\|[-|]+\|$\n", "", markdown, flags=re.M)
    return text.replace("`", "")


def _markers(customers: int, smoke: bool) -> tuple[str, str]:
    key = f"customers={customers}" + (" smoke" if smoke else "")
    return f"<!-- bench.py results {key} -->", f"<!-- end bench.py results {key} -->"


def update_document(path: Path, customers: int, smoke: bool, block: str) -> None:
    """Replace this scale's block in the document (other sections, such as Export, are left alone)."""
    begin, end = _markers(customers, smoke)
    fresh = f"{begin}\n{block}{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        _, after = rest.split(end, 1)
        text = before + fresh.rstrip("\n") + after
    elif "\n## Export" in text:
        before, after = text.split("\n## Export", 1)
        text = before.rstrip("\n") + "\n\n" + fresh + "\n## Export" + after
    else:
        text = text.rstrip("\n") + "\n\n" + fresh
    path.write_text(text)
