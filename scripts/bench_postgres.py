"""The PostgreSQL backend against the raw driver and psql, in one run on one server.

    python scripts/bench_postgres.py --smoke                     # starts a throwaway server; seconds
    python scripts/bench_postgres.py                             # 10,000 customers
    python scripts/bench_postgres.py --url postgresql://me@db.internal/postgres   # a server of yours

The synthetic database of ``bench.py`` (SQLite, cached by scale) is copied into a new database
on the server with ``migrate-to-postgres``'s copy, then, interleaved: recall (``recall`` +
``memory_text`` against psycopg running ``RECALL_SQL``), the end-of-call write (``save_call``,
forced, against one psycopg transaction writing the same rows), 1 and 8 processes finishing
calls at once (as two hosts), and the export (``memory-agent export --db URL``, over the 1,000,000
orders of ``bench_export.py``'s file) against ``psql -c "\\copy (...) to stdout csv"``. Prints the
report (Markdown) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from bench_calls import percentiles
from bench_data import cached_database, regular_identity
from bench_export import run as run_timed
from bench_export import same_rows
from bench_workload import finished_call
from export_data import build_synthetic_database
from psycopg import sql

from db import CallSnapshot
from db.owner import current_owner
from db.pg.migrate_sqlite import copy_to_postgres
from db.pg.repository import open_postgres
from db.pg.safe_url import redact_url
from db.statements.calls import RECALL
from db.statements.sql import compiled
from memory_agent.memory import memory_text

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "scripts" / "export_orders.py"
PROCESS_COUNTS = (1, 8)
GOALS = {"recall": 2.0, "finalize": 1.5, "export": 1.5}

# The raw reference for the export: the same columns, formatting and order, as psql's own CSV; the
# time in the session's time zone (PGTZ, the benchmark's restaurant's: bench_export.ENVIRONMENT),
# converted by PostgreSQL itself.
REFERENCE_EXPORT_SQL = """
SELECT o.id AS order_id,
       to_char(left(o.created_at, 19)::timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM') AS created_at,
       c.participant_identity AS customer_identity,
       coalesce(c.name, k.caller_name) AS customer_name, o.status,
       (SELECT coalesce(sum(s.quantity), 0) FROM order_items AS s WHERE s.order_id = o.id) AS item_count,
       coalesce((SELECT string_agg(s.quantity || 'x ' || s.name || CASE WHEN s.modifications = '[]' THEN ''
           ELSE ' (' || (SELECT string_agg(e.value, ', ' ORDER BY e.n)
                         FROM jsonb_array_elements_text(s.modifications::jsonb) WITH ORDINALITY AS e(value, n))
                || ')' END, ', ' ORDER BY s.position)
         FROM order_items AS s WHERE s.order_id = o.id), '') AS items,
       to_char(o.subtotal_cents / 100.0, 'FM999999990.00') AS subtotal_dollars,
       to_char(o.tip_cents / 100.0, 'FM999999990.00') AS tip_dollars,
       to_char(o.total_cents / 100.0, 'FM999999990.00') AS total_dollars,
       f.rating, o.kitchen_note
FROM orders AS o
LEFT JOIN customers AS c ON c.id = o.customer_id
LEFT JOIN calls AS k ON k.id = o.call_id
LEFT JOIN feedback AS f ON f.call_id = o.call_id
ORDER BY o.created_at, o.id
"""


# -- a server -------------------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """A PostgreSQL server of its own on 127.0.0.1, with the default (durable) settings; its admin URL."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: float(p.parent.name), reverse=True)
    found = next((d for d in debian if (d / "initdb").is_file()), None)
    bin_dir = found or (Path(shutil.which("initdb") or "initdb").parent)
    if not (bin_dir / "initdb").is_file():
        sys.exit("bench_postgres: PostgreSQL is not installed (no initdb); give --url of a server")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    top = Path(tempfile.mkdtemp(prefix="bench-postgres-server-"))
    if as_postgres:
        shutil.chown(top, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = top / "data"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {top} -c max_connections=200"
    ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
    try:
        for command in (
            [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            [*ctl, "-l", str(top / "log"), "-o", options, "start"],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"bench_postgres: {Path(command[len(as_postgres)]).name} failed: {done.stderr.strip()}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"memory_agent_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- the raw references ---------------------------------------------------------------------------


def raw_finalize(conn: psycopg.Connection[Any], snap: CallSnapshot) -> None:
    """The same rows as ``save_call`` of a final snapshot, in the fewest statements, in one transaction."""
    assert snap.identity is not None and snap.order is not None and snap.feedback is not None
    order, feedback, now = snap.order, snap.feedback, snap.ended_at
    owner = current_owner()
    with conn.transaction():
        found = conn.execute(
            "INSERT INTO customers (participant_identity, household, created_at, last_seen_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (participant_identity) DO UPDATE"
            " SET last_seen_at = greatest(customers.last_seen_at, excluded.last_seen_at) RETURNING id",
            (snap.identity, snap.household or snap.identity, snap.started_at, snap.started_at),
        ).fetchone()
        assert found is not None
        customer_id = found[0]
        conn.execute(
            "INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason,"
            " owner_host, owner_pid, owner_started) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                snap.call_id,
                customer_id,
                snap.caller_name,
                snap.started_at,
                now,
                snap.end_reason,
                owner.host,
                owner.pid,
                owner.started,
            ),
        )
        placed = conn.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
            " payment_method, created_at, updated_at, placed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            (
                snap.call_id,
                customer_id,
                order.status,
                order.subtotal_cents,
                order.tip_cents,
                order.total_cents,
                order.payment_method,
                snap.started_at,
                now,
                now,
            ),
        ).fetchone()
        assert placed is not None
        order_id = placed[0]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents,"
                " modifications, accepted_allergens) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        order_id,
                        pos,
                        i.menu_item,
                        i.name,
                        i.quantity,
                        i.unit_price_cents,
                        json.dumps(i.modifications, ensure_ascii=False),
                        json.dumps(i.accepted_allergens, ensure_ascii=False),
                    )
                    for pos, i in enumerate(order.items, start=1)
                ],
            )
            conn.execute(
                "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (%s, %s, %s, %s, %s)",
                (snap.call_id, customer_id, feedback.rating, feedback.comment, now),
            )
            cur.executemany(
                "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (snap.call_id, seq, m.role, m.agent, m.content, m.created_at)
                    for seq, m in enumerate(snap.messages, 1)
                ],
            )
        conn.execute(
            "UPDATE customers SET name = %s, email = %s, call_count = call_count + 1, order_count = order_count + 1,"
            " lifetime_spend_cents = lifetime_spend_cents + %s, last_order_id = %s, last_rating = %s,"
            " last_feedback_comment = %s, last_seen_at = greatest(last_seen_at, %s) WHERE id = %s",
            (
                snap.caller_name,
                snap.email,
                order.total_cents,
                order_id,
                feedback.rating,
                feedback.comment,
                now,
                customer_id,
            ),
        )


# -- measuring ------------------------------------------------------------------------------------


async def interleaved(
    samples: int, contenders: dict[str, Callable[[], Awaitable[object]]], *, warmup: int = 20
) -> dict[str, dict[str, float]]:
    """Each contender in turn (who goes first rotates); p50 and p99 of each."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + samples):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            await contenders[name]()
            if i >= warmup:
                times[name].append(time.perf_counter() - started)
    return {name: percentiles(values) for name, values in times.items()}


def sync(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return fn()

    return run


async def bench_calls(url: str, customers: int, samples: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(5)
    results: dict[str, Any] = {}
    template = finished_call("template", regular_identity(1))
    run = uuid.uuid4().hex[:10]
    counter = iter(range(10**9))

    def identity() -> str:
        return regular_identity(rng.randint(1, customers))

    def snapshot() -> CallSnapshot:
        return template.model_copy(update={"call_id": f"f{run}-{next(counter)}", "identity": identity()})

    with psycopg.connect(url, autocommit=True) as raw:
        async with open_postgres(url, spool_dir=folder) as repo:
            await repo.recovered()

            async def product_recall() -> None:
                memory_text(await repo.recall(identity()))

            def raw_recall() -> None:
                raw.execute(compiled(RECALL, "postgresql"), {"identity": identity()}).fetchall()

            async def hop() -> None:
                await repo.read("SELECT 1", ())

            print("1. recall", flush=True)
            results["recall"] = await interleaved(
                samples, {"product": product_recall, "raw": sync(raw_recall), "hop": hop}
            )

            # Snapshots are made before the clock starts: save_call's own cost is what is measured.
            pending: dict[str, CallSnapshot] = {}

            async def product_write() -> None:
                await repo.save_call(pending["product"], forced=True)

            def raw_write() -> None:
                raw_finalize(raw, pending["raw"])

            print("2. end-of-call write", flush=True)
            names = ["product", "raw"]
            times: dict[str, list[float]] = {name: [] for name in names}
            for i in range(10 + samples // 4):
                for name in names[i % 2 :] + names[: i % 2]:
                    pending[name] = snapshot()
                    started = time.perf_counter()
                    await (product_write() if name == "product" else sync(raw_write)())
                    if i >= 10:
                        times[name].append(time.perf_counter() - started)
            results["finalize"] = {name: percentiles(values) for name, values in times.items()}
    return results


def bench_processes(url: str, customers: int, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for count in PROCESS_COUNTS:
        command = [sys.executable, __file__, "--writer", url, "--customers", str(customers), "--seconds", str(seconds)]
        writers = [
            subprocess.Popen(
                [*command, "--seed", str(n), "--host-id", f"bench-host-{n % 2}"],
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
        results = [json.loads(w.communicate(timeout=seconds + 120)[0].strip().splitlines()[-1]) for w in writers]
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


async def writer(url: str, customers: int, seconds: float, seed: int, host_id: str) -> dict[str, Any]:
    """One process of the concurrent benchmark: finished calls through its own repository, for ``seconds``."""
    rng = random.Random(seed)
    template = finished_call("template", regular_identity(1))
    prefix = uuid.uuid4().hex[:12]
    calls = errors = 0
    worst = 0.0
    first_error = None
    with tempfile.TemporaryDirectory(prefix="bench-pg-writer-") as folder:
        async with open_postgres(url, spool_dir=folder, host_id=host_id) as repo:
            await repo.recovered()
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            started = time.perf_counter()
            while (now := time.perf_counter()) < started + seconds:
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


def bench_export(url: str, repeat: int, folder: Path) -> dict[str, Any]:
    psql = shutil.which("psql")
    if psql is None:
        sys.exit("bench_postgres: psql is not installed (Debian: postgresql-client)")
    one_line = " ".join(REFERENCE_EXPORT_SQL.split())
    tools = {
        "memory-agent export": [sys.executable, str(EXPORT), "--db", url],
        "psql \\copy": [psql, "-X", "-q", "-d", url, "-c", f"\\copy ({one_line}) to stdout with (format csv, header)"],
    }
    outputs = {name: folder / f"export-{n}.csv" for n, name in enumerate(tools)}
    times: dict[str, list[float]] = {name: [] for name in tools}
    peaks: dict[str, float | None] = dict.fromkeys(tools)
    run_timed(tools["psql \\copy"], outputs["psql \\copy"])  # warm the server's cache
    for _ in range(repeat):
        for name, command in tools.items():
            elapsed, peak = run_timed(command, outputs[name])
            times[name].append(elapsed)
            peaks[name] = None if peak is None else max(peak, peaks[name] or 0.0)
    rows = same_rows(outputs["memory-agent export"], outputs["psql \\copy"])
    return {
        "orders": rows,
        "bytes": outputs["memory-agent export"].stat().st_size,
        "tools": {
            name: {"best_s": min(t), "median_s": statistics.median(t), "peak_mb": peaks[name]}
            for name, t in times.items()
        },
    }


# -- the report -----------------------------------------------------------------------------------


def ratio(results: dict[str, Any], key: str, a: str = "product", b: str = "raw") -> float:
    return float(results[a][key] / results[b][key])


def render(results: dict[str, Any]) -> str:
    plan, server = results["plan"], results["server"]
    recall, finalize, export = results["recall"], results["finalize"], results["export"]
    tools = export["tools"]
    export_ratio = tools["memory-agent export"]["median_s"] / tools["psql \\copy"]["median_s"]
    lines = [
        f"### PostgreSQL: {plan['customers']:,} customers{' (smoke)' if plan['smoke'] else ''}",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()} CPUs; {platform.platform()}; Python {platform.python_version()}",
        f"- Server: {server['version']} on 127.0.0.1, {server['settings']}; psycopg {psycopg.__version__}",
        f"- Database: `bench.py`'s synthetic file ({results['copy']['rows']:,} rows) copied with"
        f" `migrate-to-postgres` in {results['copy']['seconds']:.1f} s"
        + (
            f"; the export's, `bench_export.py`'s ({results['export_copy']['rows']:,} rows), in"
            f" {results['export_copy']['seconds']:.1f} s"
            if "export_copy" in results
            else ""
        ),
        "",
        "Times in milliseconds; ratios against the reference measured in the same run.",
        "",
        "#### Recall: identity to memory text",
        "",
        "`product` is `PostgresRepository.recall` + `memory_text` on a random caller; `raw` is psycopg running"
        " the same statement (`db.statements.calls.RECALL`) on one connection; `hop` is a `SELECT 1` through the"
        " repository's pool, the floor of a pooled read (the lookup has a connection of its own).",
        "",
        "| path | p50 | p99 | p50 vs raw | p99 vs raw | samples |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("product", "raw", "hop"):
        r = recall[name]
        lines.append(
            f"| {name} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {ratio(recall, 'p50_ms', name):.2f}x"
            f" | {ratio(recall, 'p99_ms', name):.2f}x | {r['n']} |"
        )
    lines += [
        "",
        "#### End-of-call write",
        "",
        "A finished call's final record (an order of 5 items, feedback and 60 messages) of a random regular caller:"
        " `save_call(snapshot, forced=True)` (a synchronous commit) against one psycopg transaction writing the"
        " same rows.",
        "",
        "| path | p50 | p99 | p50 vs raw | p99 vs raw | samples |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("product", "raw"):
        r = finalize[name]
        lines.append(
            f"| {name} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {ratio(finalize, 'p50_ms', name):.2f}x"
            f" | {ratio(finalize, 'p99_ms', name):.2f}x | {r['n']} |"
        )
    lines += [
        "",
        "#### Processes finishing calls at once",
        "",
        f"Separate processes as two hosts (host ids alternate), each with its own pool, writing finished calls"
        f" (`save_call(forced=True)`) for {plan['writer_seconds']:.1f} s, released together.",
        "",
        "| processes | calls/s | calls | errors | worst wait (ms) |",
        "|---|---|---|---|---|",
    ]
    for row in results["processes"]:
        lines.append(
            f"| {row['processes']} | {row['calls_per_s']:.0f} | {row['calls']} | {row['errors']}"
            f" | {row['worst_wait_ms']:.1f} |"
        )
    lines += [
        "",
        "#### Export",
        "",
        f'`memory-agent export --db URL` (CSV, a server-side cursor) against `psql -c "\\copy (...) to stdout csv"`'
        f" of the same columns, both writing a file, {plan['repeat']} runs each after a warm-up;"
        f" {export['orders']:,} orders, {export['bytes'] / 1e6:.1f} MB; the rows are checked to be the same.",
        "",
        "| tool | best s | median s | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for name, t in tools.items():
        peak = "n/a" if t["peak_mb"] is None else f"{t['peak_mb']:.1f}"
        lines.append(f"| {name.replace('|', '/')} | {t['best_s']:.2f} | {t['median_s']:.2f} | {peak} |")
    errors = max(row["errors"] for row in results["processes"])
    measured = {
        "recall": ratio(recall, "p50_ms"),
        "finalize": ratio(finalize, "p50_ms"),
        "export": export_ratio,
    }
    lines += [
        "",
        "#### Goals",
        "",
        "| goal | measured | status |",
        "|---|---|---|",
        f"| recall p50 at most 2x the raw driver | {measured['recall']:.2f}x | {_status(measured['recall'], 2.0)} |",
        f"| end-of-call write p50 at most 1.5x the raw driver | {measured['finalize']:.2f}x"
        f" | {_status(measured['finalize'], 1.5)} |",
        f"| 8 processes finishing calls at once: 0 errors | {errors} errors | {'met' if errors == 0 else 'missed'} |",
        f"| export at most 1.5x `psql \\copy` (median) | {export_ratio:.2f}x | {_status(export_ratio, 1.5)} |",
        "",
    ]
    return "\n".join(lines)


def _status(value: float, goal: float) -> str:
    return "met" if value <= goal else f"missed by {100 * (value / goal - 1):.0f}%"


def server_facts(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        found: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings"
                " WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers')"
            ).fetchall()
        )
    version = found.pop("server_version", "?")
    return {"version": f"PostgreSQL {version}", "settings": ", ".join(f"{k} {v}" for k, v in sorted(found.items()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a server's database where this may create and drop one (default: its own)")
    parser.add_argument("--customers", type=int, help="regular customers in the synthetic database (10,000)")
    parser.add_argument("--smoke", action="store_true", help="300 customers and few samples: seconds")
    parser.add_argument("--samples", type=int, default=2000, help="recall samples per contender (2000)")
    parser.add_argument("--writer-seconds", type=float, default=5.0, help="seconds per process count (5)")
    parser.add_argument("--repeat", type=int, default=3, help="timed export runs of each tool (3)")
    parser.add_argument(
        "--export-orders",
        type=int,
        default=1_000_000,
        help="orders in the export's own synthetic database, as bench_export.py's (1,000,000; 0: the recall database)",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "memory-agent-bench")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--writer", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--host-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        result = asyncio.run(writer(args.writer, args.customers, args.seconds, args.seed, args.host_id))
        print(json.dumps(result), flush=True)
        return 0

    customers = args.customers or (300 if args.smoke else 10_000)
    samples = 100 if args.smoke else args.samples
    seconds = 0.5 if args.smoke else args.writer_seconds
    repeat = 1 if args.smoke else args.repeat
    built = cached_database(customers, args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="bench-postgres-") as scratch:
        folder = Path(scratch)
        with contextlib.ExitStack() as stack:
            admin = args.url or stack.enter_context(throwaway_server())
            url = stack.enter_context(fresh_database(admin))
            print(f"server: {redact_url(admin)}; database {urlsplit(url).path[1:]}", flush=True)
            started = time.perf_counter()
            report = copy_to_postgres(built.path, url)
            results: dict[str, Any] = {
                "plan": {
                    "customers": customers,
                    "smoke": args.smoke,
                    "samples": samples,
                    "writer_seconds": seconds,
                    "repeat": repeat,
                },
                "server": server_facts(url),
                "copy": {"rows": sum(t.rows for t in report.tables), "seconds": time.perf_counter() - started},
            }
            print(f"copied {results['copy']['rows']:,} rows in {results['copy']['seconds']:.1f} s", flush=True)
            results.update(asyncio.run(bench_calls(url, customers, samples, folder)))
            print("3. processes finishing calls at once", flush=True)
            results["processes"] = bench_processes(url, customers, seconds)
            print("4. export", flush=True)
            export_orders = 0 if args.smoke else args.export_orders
            if export_orders:
                source = args.cache_dir / f"export-{export_orders}.db"
                if not source.exists():
                    build_synthetic_database(source, orders=export_orders)
                url = stack.enter_context(fresh_database(admin))
                started = time.perf_counter()
                copied = copy_to_postgres(source, url)
                results["export_copy"] = {
                    "rows": sum(t.rows for t in copied.tables),
                    "seconds": time.perf_counter() - started,
                }
                print(f"copied {results['export_copy']['rows']:,} rows in {results['export_copy']['seconds']:.1f} s")
            results["export"] = bench_export(url, repeat, folder)
    text = render(results)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
