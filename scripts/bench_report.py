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
    "5. Greeting: time to the first LLM request",
    "6. Memory text size",
    "7. Write transactions per call",
    "8. Database time per call",
    "9. WAL and database file size",
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
    greeting_ratio = results["greeting"]["one"]["p50_ratio"]
    at_once = results["greeting"]["at_once_calls"]
    greeting_diff = results["greeting"]["at_once"]["p99_diff_ms"]
    longest = max(row["memory_chars"] for row in results["text_size"])
    forced = max(results["write_counts"][pace]["new caller"]["forced"]["max"] for pace in ("paced", "instant"))
    db_share = results["db_time"]["paced"]["cpu"]["db_share"]
    step = f"{results['db_time']['step_ms']:g} ms"
    rows = [
        ("recall p50 within 2x of raw", f"{recall_ratio:.2f}x", recall_ratio <= 2.0, recall_ratio / 2.0),
        (
            "1,000-order caller at most 1.2x a 1-order caller (p50)",
            f"{history_ratio:.2f}x",
            history_ratio <= 1.2,
            history_ratio / 1.2,
        ),
        ("finalize p50 within 3x of raw", f"{finalize_ratio:.2f}x", finalize_ratio <= 3.0, finalize_ratio / 3.0),
        ("zero errors at 8 writer processes", f"{conc[8]['errors']} errors", conc[8]["errors"] == 0, None),
        (
            "4 processes at least 70% of 1-process throughput",
            f"{scaling:.0%}",
            scaling >= 0.70,
            0.70 / scaling if scaling else None,
        ),
        (
            "greeting p50 at most 1.1x a repository that does nothing",
            f"{greeting_ratio:.2f}x",
            greeting_ratio <= 1.1,
            greeting_ratio / 1.1,
        ),
        (
            f"{at_once} calls at once: greeting p99 under 1 ms over a repository that does nothing",
            f"{greeting_diff:+.2f} ms",
            greeting_diff < 1.0,
            greeting_diff / 1.0,
        ),
        ("memory text at most 1,500 characters", f"{longest} chars", longest <= 1500, longest / 1500),
        ("forced writes per new caller's call at most 4 (was 10)", f"{forced} at most", forced <= 4, forced / 4),
        (
            f"database under 10% of a call's CPU (LLM {step} a step)",
            f"{db_share:.1%}",
            db_share < 0.10,
            db_share / 0.10,
        ),
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
        [
            name,
            _ms(s["p50_ms"]),
            _ms(s["p99_ms"]),
            f"{s['p50_ms'] / base['p50_ms']:.2f}x",
            f"{s['p99_ms'] / base['p99_ms']:.2f}x",
            str(int(s["n"])),
        ]
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
        *_section(
            0,
            "`product` is `Repository.recall` + `memory_text` on a random caller; `raw` is the same"
            " statement (`db.statements.calls.RECALL`) on a plain `sqlite3` connection; `hop` is a `SELECT 1` on"
            " the repository's reader, one round trip to aiosqlite's thread, the floor of any awaited read.",
            _table(PAIR_HEADERS, _pair_rows(results["recall"], "raw")),
        ),
        *_section(
            1,
            "The product path for named callers whose last orders have the same three items.",
            _table(
                ["caller", "p50", "p99", "p50 vs 1 order", "p99 vs 1 order", "samples"],
                _pair_rows(results["history"], "1 order"),
            ),
        ),
        *_section(
            2,
            "A finished call's final record (an order of 5 items, feedback and 60 messages) of a random"
            " regular caller: `Repository.save_call(snapshot, forced=True)` against a raw `sqlite3`"
            " transaction writing the same rows, finding the customer by identity with the product's"
            " statement, with the same PRAGMAs (WAL, synchronous FULL, foreign keys).",
            _table(PAIR_HEADERS, _pair_rows(results["finalize"], "raw")),
        ),
        *_concurrency(results["concurrency"], plan["writer_seconds"]),
        *_greeting(results["greeting"]),
        *_section(
            5,
            "Characters of the memory text the Greeter's instructions receive, against a naive JSON dump"
            " of the caller's whole order history.",
            _table(
                ["past orders", "memory text", "naive dump"],
                [[f"{r['orders']:,}", f"{r['memory_chars']:,}", f"{r['naive_chars']:,}"] for r in results["text_size"]],
            ),
        ),
        *_write_counts(results["write_counts"], results.get("fsyncs"), plan),
        *_db_time(results["db_time"]),
        *_files(results["files"]),
        *_section(
            9,
            "Export figures are in the Export section.",
            _table(
                ["goal", "measured", "status"],
                [[goal, measured, margin] for goal, measured, _, margin in goals(results)],
            ),
        ),
    ]
    if plan["customers"] < 1_000_000:
        parts += ["", "The recall goal is set at 1,000,000 customers; at this scale it is indicative only."]
    block = "\n".join(parts) + "\n"
    return _plain(block), block


def _section(index: int, *paragraphs: str) -> list[str]:
    out = ["", f"#### {SECTION_TITLES[index]}"]
    for paragraph in paragraphs:
        out += ["", paragraph]
    return out


def _concurrency(rows: list[dict[str, Any]], seconds: float) -> list[str]:
    one = rows[0]["calls_per_s"]
    out = _section(
        3,
        "Separate processes, each writing finished calls (`save_call(forced=True)`) through its own"
        f" repository for {seconds} s.",
        _table(
            ["processes", "calls/s", "vs 1 process", "calls", "errors", "worst wait (ms)"],
            [
                [
                    str(r["processes"]),
                    f"{r['calls_per_s']:.0f}",
                    f"{r['calls_per_s'] / one:.0%}" if one else "-",
                    str(r["calls"]),
                    str(r["errors"]),
                    _ms(r["worst_wait_ms"]),
                ]
                for r in rows
            ],
        ),
    )
    errors = [r["first_error"] for r in rows if r["first_error"]]
    return out + (["", f"First error seen: `{errors[0]}`"] if errors else [])


def _greeting(greeting: dict[str, Any]) -> list[str]:
    at_once = greeting["at_once_calls"]
    labels = {"one": "1", "at_once": f"{at_once}", "burst": f"{at_once}, from the burst"}
    rows = []
    for kind, label in labels.items():
        g = greeting[kind]
        real, null = g["real"], g["null"]
        rows.append(
            [
                label,
                _ms(real["p50_ms"]),
                _ms(null["p50_ms"]),
                f"{g['p50_ratio']:.2f}x",
                _ms(real["p99_ms"]),
                _ms(null["p99_ms"]),
                f"{g['p99_diff_ms']:+.3f}",
                str(int(real["n"])),
            ]
        )
    return _section(
        4,
        "From `start_call` to the greeting's LLM request (scripted LLM, returning callers), through the"
        " product's repository (`real`) against a repository that does nothing (`null`: the same memory,"
        f" returned at once, and no writes), alternating. One call at a time, then {at_once} started at"
        f" once with `asyncio.gather`: each timed from its own `start_call`, and ({at_once}, from the"
        " burst) from the moment all were started, which is when the last caller hears the greeting.",
        _table(
            ["at once", "real p50", "null p50", "p50 real/null", "real p99", "null p99", "p99 real - null", "calls"],
            rows,
        ),
    )


def _range(stats: dict[str, float]) -> str:
    low, high = int(stats["min"]), int(stats["max"])
    return f"{stats['mean']:.1f}" + ("" if low == high else f" ({low} to {high})")


def _write_counts(counts: dict[str, Any], fsyncs: dict[str, Any] | None, plan: dict[str, Any]) -> list[str]:
    step = f"{counts['step_ms']:g} ms"
    rows = [
        [kind, pace_label, _range(c["forced"]), _range(c["relaxed"]), str(c["calls"])]
        for kind in ("new caller", "returning caller")
        for pace_label, c in ((step, counts["paced"][kind]), ("at once", counts["instant"][kind]))
    ]
    out = _section(
        6,
        "Committed write transactions (`repo.write_counts`) during one whole call of the offline demo"
        " (`memory_agent.demo`): a new caller who orders and rates, then the same caller's return call"
        " that reorders; the mean over the pairs (range). `forced` is synchronous FULL, on disk before"
        " the call goes on; `relaxed` is synchronous NORMAL. With the scripted LLM answering at once,"
        " checkpoints come faster than they are written and are merged; taking"
        f" {step} a step (a real model takes hundreds) each LLM step's changes get their own write.",
        _table(["call", "LLM step", "forced", "relaxed", "calls"], rows),
    )
    if not plan["strace"]:
        return out
    if fsyncs is None:
        return out + ["", "fsync count skipped: strace is missing or may not trace here."]
    return out + [
        "",
        "`fsync` and `fdatasync` system calls during one such call (LLM at once) in a process of its own"
        " (`strace -f`, after a warm-up pair), by the file synced:",
        "",
        _table(
            ["call", "syncs", "WAL", "main file", "other"],
            [
                [kind.replace("-", " "), str(c["total"]), str(c["wal"]), str(c["main"]), str(c["other"])]
                for kind, c in fsyncs["calls"].items()
            ],
        ),
    ]


def _db_time(db_time: dict[str, Any]) -> list[str]:
    step = f"{db_time['step_ms']:g} ms"
    rows = []
    for pace, label in (("paced", step), ("instant", "at once")):
        cpu, wall = db_time[pace]["cpu"], db_time[pace]["wall"]
        for name in ("real", "null"):
            c, w = cpu[name], wall[name]
            rows.append([label, name, _ms(c["mean_ms"]), _ms(c["p50_ms"]), _ms(w["mean_ms"]), _ms(w["p50_ms"]), ""])
        rows.append([label, "database share", f"{cpu['db_share']:.1%}", "", f"{wall['db_share']:.1%}", "", ""])
        rows[-3][-1] = rows[-2][-1] = str(db_time[pace]["calls"])
    return _section(
        7,
        "Whole calls of the demo (new and returning callers in turn) through the product's repository"
        " (`real`) and through a repository that does nothing (`null`), interleaved, in one process;"
        f" the scripted LLM taking {step} a step (every checkpoint written, as with a real model) and"
        " answering at once (checkpoints merged). CPU is `time.process_time()` (all threads) per call;"
        " the database's share is (real - null) / real of the means. Wall time includes the LLM's steps.",
        _table(["LLM step", "repository", "CPU mean", "CPU p50", "wall mean", "wall p50", "calls"], rows),
    )


def _bytes(value: int | None) -> str:
    return "no file" if value is None else f"{value:,}"


def _files(files: dict[str, Any]) -> list[str]:
    calls = files["calls"]
    main = files["open"]["main"] or 0
    return _section(
        8,
        f"A fresh database after {calls:,} whole calls of the demo (new and returning callers in turn)"
        " written through the product, in bytes; the largest WAL is sampled after each call.",
        _table(
            ["when", "WAL", "main file"],
            [
                [f"after {calls:,} calls, open", _bytes(files["open"]["wal"]), _bytes(files["open"]["main"])],
                ["largest WAL after any call", f"{files['largest_wal']:,}", ""],
                ["after the repository is closed", _bytes(files["closed"]["wal"]), _bytes(files["closed"]["main"])],
            ],
        ),
        f"About {main / calls:,.0f} bytes of main file per call." if calls else "",
    )


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
