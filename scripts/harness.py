"""How the benchmarks measure: timing with rotation, percentiles, a child's time and peak memory, the
raw-driver references, a throwaway PostgreSQL server, and Markdown tables.

The benchmarks hold what they measure; this module holds how. The raw references carry their own
plain SQL on purpose: they are what the product's data layer is compared with, so they do not use it.
Imports only the standard library at the top (psycopg where PostgreSQL is asked for), so the
writer processes of the concurrency benchmarks start quickly.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import inspect
import json
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

    from db import CallSnapshot

GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None
BUSY_TIMEOUT_MS = 5_000

# -- timing ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The value at quantile ``q`` (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of ``seconds``, in milliseconds, and the count."""
    return {"p50_ms": percentile(seconds, 0.50) * 1000, "p99_ms": percentile(seconds, 0.99) * 1000, "n": len(seconds)}


def rotated(names: Sequence[str], i: int) -> list[str]:
    """``names`` starting at the ``i``-th (modulo), so each goes first in turn."""
    at = i % len(names)
    return [*names[at:], *names[:at]]


Contender = Callable[[], object]  # returns None, or an awaitable that is awaited inside the clock


async def interleaved(
    samples: int,
    contenders: dict[str, Contender],
    *,
    warmup: int = 20,
    before: Callable[[str], object] | None = None,
) -> dict[str, dict[str, float]]:
    """Run the contenders in turn, ``warmup`` + ``samples`` rounds, who goes first rotating; each one's
    percentiles over the last ``samples`` rounds. ``before(name)`` runs before each one's clock starts
    (to prepare its input: only the contender's own work is timed)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(warmup + samples):
        for name in rotated(list(contenders), i):
            if before is not None:
                before(name)
            started = time.perf_counter()
            result = contenders[name]()
            if inspect.isawaitable(result):
                await result
            if i >= warmup:
                times[name].append(time.perf_counter() - started)
    return {name: percentiles(values) for name, values in times.items()}


def ratio(results: dict[str, dict[str, float]], key: str = "p50_ms", a: str = "product", b: str = "raw") -> float:
    return float(results[a][key] / results[b][key])


# -- child processes ------------------------------------------------------------------------------


def run_child(
    command: Sequence[str], output: Path, *, stdin_text: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float | None]:
    """Wall seconds and peak RSS in MB (None without GNU time) of one child writing its stdout to ``output``.

    Peak memory comes from GNU time: a child's own rusage would count the pages it shared with this
    Python process between fork and exec. Exits with the child's error if it fails.
    """
    peak_file = output.with_suffix(".rss")
    timed = [GNU_TIME, "-f", "%M", "-o", str(peak_file), *command] if GNU_TIME else list(command)
    with output.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.run(timed, input=(stdin_text or "").encode(), stdout=out, stderr=subprocess.PIPE, env=env)
        elapsed = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).stem}: {Path(command[0]).name} failed: {child.stderr.decode().strip()[-2000:]}")
    peak = int(peak_file.read_text().split()[-1]) / 1024 if GNU_TIME else None
    peak_file.unlink(missing_ok=True)
    return elapsed, peak


@dataclass(frozen=True)
class Child:
    """A command whose stdout is timed: optional text on its stdin, optional environment."""

    command: Sequence[str]
    stdin_text: str | None = None
    env: dict[str, str] | None = None


def timed_children(
    children: dict[str, Child], folder: Path, *, repeat: int, warm: str | None = None
) -> dict[str, dict[str, Any]]:
    """Each child ``repeat`` times in turn, who goes first rotating, after one warm-up run of ``warm``
    (to warm the caches); each one's best and median seconds, peak RSS (MB) and output file."""
    outputs = {name: folder / f"child-{n}.out" for n, name in enumerate(children)}
    if warm is not None:
        child = children[warm]
        run_child(child.command, outputs[warm], stdin_text=child.stdin_text, env=child.env)
    times: dict[str, list[float]] = {name: [] for name in children}
    peaks: dict[str, float | None] = dict.fromkeys(children)
    for i in range(repeat):
        for name in rotated(list(children), i):
            child = children[name]
            elapsed, peak = run_child(child.command, outputs[name], stdin_text=child.stdin_text, env=child.env)
            times[name].append(elapsed)
            peaks[name] = None if peak is None else max(peak, peaks[name] or 0.0)
    return {
        name: {
            "best_s": min(t),
            "median_s": statistics.median(t),
            "peak_mb": peaks[name],
            "output": outputs[name],
        }
        for name, t in times.items()
    }


def released_together(commands: Sequence[Sequence[str]], *, timeout: float) -> list[dict[str, Any]]:
    """Start the commands; each prints ``ready``; then tell them all ``go`` at once; each one's last
    stdout line, read as JSON."""
    children = [
        subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{Path(commands[0][1]).name}: a process failed to start")
    for child in children:  # all start together
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    return [json.loads(child.communicate(timeout=timeout)[0].strip().splitlines()[-1]) for child in children]


def import_weight(module: str) -> dict[str, Any]:
    """What importing ``module`` in a fresh interpreter costs: milliseconds and the top-level packages
    it pulls in, heaviest first (the sum of their modules' own import times)."""
    child = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    by_package: dict[str, int] = {}
    total = 0
    for line in child.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self" in line:
            continue
        own, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0) + int(own)
        if name == module:
            total = int(cumulative)
    heaviest = sorted(by_package.items(), key=lambda item: -item[1])
    return {"total_ms": total / 1000, "packages": {name: us / 1000 for name, us in heaviest}}


# -- databases ------------------------------------------------------------------------------------


def new_database(path: Path | str) -> None:
    """Create the SQLite file ``path`` with the product's schema (``db.prepare_database``), from sync
    code whether or not an event loop is running."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from db import prepare_database

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, prepare_database(path)).result()


@functools.cache
def schema_tag() -> str:
    """A short digest of the product's SQLite schema, to name cached files: a new schema, a new file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "schema.db"
        new_database(path)
        conn = sqlite3.connect(path)
        try:
            schema = conn.execute("SELECT group_concat(sql, ';') FROM sqlite_master ORDER BY name").fetchone()[0]
        finally:
            conn.close()
    return hashlib.sha256(schema.encode()).hexdigest()[:8]


# -- the raw references ---------------------------------------------------------------------------

# The caller lookup as the data layer answers it (the profile, its facts, its usual order and the
# lines of its last order), written out for each driver.
SQLITE_RECALL_SQL = """
SELECT c.id, c.participant_identity, c.name, c.email, c.call_count, c.order_count, c.lifetime_spend_cents,
       c.last_rating, c.last_feedback_comment,
       (SELECT json_group_array(json_array(kind, topic, value, stated_at)) FROM (
            SELECT * FROM caller_facts WHERE customer_id = c.id AND superseded_at IS NULL AND value IS NOT NULL
            ORDER BY kind, stated_at DESC, id DESC LIMIT 60)) AS facts,
       (SELECT json_group_array(json_array(menu_item, name, quantity, unit_price_cents, modifications,
                                           accepted_allergens)) FROM (
            SELECT * FROM order_items WHERE order_id = c.usual_order_id ORDER BY position)) AS usual,
       o.created_at, o.total_cents,
       i.menu_item, i.name, i.quantity, i.unit_price_cents, i.modifications, i.accepted_allergens
FROM customers AS c
LEFT JOIN orders AS o ON o.id = c.last_order_id
LEFT JOIN order_items AS i ON i.order_id = o.id
WHERE c.participant_identity = ? ORDER BY i.position
"""
POSTGRES_RECALL_SQL = """
SELECT c.id, c.participant_identity, c.name, c.email, c.call_count, c.order_count, c.lifetime_spend_cents,
       c.last_rating, c.last_feedback_comment,
       (SELECT json_agg(json_build_array(f.kind, f.topic, f.value, f.stated_at)
                        ORDER BY f.kind, f.stated_at DESC, f.id DESC)::text
        FROM (SELECT * FROM caller_facts
              WHERE customer_id = c.id AND superseded_at IS NULL AND value IS NOT NULL
              ORDER BY kind, stated_at DESC, id DESC LIMIT 60) AS f) AS facts,
       (SELECT json_agg(json_build_array(u.menu_item, u.name, u.quantity, u.unit_price_cents, u.modifications,
                                         u.accepted_allergens) ORDER BY u.position)::text
        FROM order_items AS u WHERE u.order_id = c.usual_order_id) AS usual,
       o.created_at, o.total_cents,
       i.menu_item, i.name, i.quantity, i.unit_price_cents, i.modifications, i.accepted_allergens
FROM customers AS c
LEFT JOIN orders AS o ON o.id = c.last_order_id
LEFT JOIN order_items AS i ON i.order_id = o.id
WHERE c.participant_identity = %s ORDER BY i.position
"""

# The end-of-call write of a finished call (an order, its lines, feedback, the transcript) in the
# fewest statements; ``{greatest}`` is each dialect's two-argument maximum.
_UPSERT_CUSTOMER = (
    "INSERT INTO customers (participant_identity, household, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (participant_identity) DO UPDATE"
    " SET last_seen_at = {greatest}(customers.last_seen_at, excluded.last_seen_at) RETURNING id"
)
_INSERT_CALL = (
    "INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason,"
    " owner_host, owner_pid, owner_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ORDER = (
    "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
    " payment_method, created_at, updated_at, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_INSERT_LINE = (
    "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents,"
    " modifications, accepted_allergens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_FEEDBACK = "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)"
_INSERT_MESSAGE = "INSERT INTO messages (call_id, seq, role, agent, content, created_at) VALUES (?, ?, ?, ?, ?, ?)"
_UPDATE_CUSTOMER = (
    "UPDATE customers SET name = ?, email = ?, call_count = call_count + 1, order_count = order_count + 1,"
    " lifetime_spend_cents = lifetime_spend_cents + ?, last_order_id = ?, last_rating = ?,"
    " last_feedback_comment = ?, last_seen_at = {greatest}(last_seen_at, ?) WHERE id = ?"
)


class _FinalRows:
    """The parameters of each statement of a finished call's write."""

    def __init__(self, snap: CallSnapshot) -> None:
        assert snap.identity is not None and snap.order is not None and snap.feedback is not None
        order, feedback, now = snap.order, snap.feedback, snap.ended_at
        self.customer = (snap.identity, snap.household or snap.identity, snap.started_at, snap.started_at)
        owner = (socket.gethostname(), os.getpid(), None)
        self.call = (snap.call_id, snap.caller_name, snap.started_at, now, snap.end_reason, *owner)
        self.order = (
            snap.call_id,
            order.status,
            order.subtotal_cents,
            order.tip_cents,
            order.total_cents,
            order.payment_method,
            snap.started_at,
            now,
            now,
        )
        self.lines = [
            (
                pos,
                i.menu_item,
                i.name,
                i.quantity,
                i.unit_price_cents,
                json.dumps(i.modifications, ensure_ascii=False),
                json.dumps(i.accepted_allergens, ensure_ascii=False),
            )
            for pos, i in enumerate(order.items, start=1)
        ]
        self.feedback = (snap.call_id, feedback.rating, feedback.comment, now)
        self.messages = [
            (snap.call_id, seq, m.role, m.agent, m.content, m.created_at)
            for seq, m in enumerate(snap.messages, start=snap.first_seq)
        ]
        self.update = (snap.caller_name, snap.email, order.total_cents, feedback.rating, feedback.comment, now)


class RawSqlite:
    """The reference on SQLite: a plain ``sqlite3`` connection with the PRAGMAs of a forced write (WAL,
    synchronous FULL, foreign keys)."""

    name = "sqlite3"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        self.conn.close()

    def recall(self, identity: str) -> list[Any]:
        return self.conn.execute(SQLITE_RECALL_SQL, (identity,)).fetchall()

    def finalize(self, snap: CallSnapshot) -> None:
        """The same rows as the repository's ``save_call`` of a final snapshot, in one transaction."""
        rows, conn = _FinalRows(snap), self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            customer_id = conn.execute(_UPSERT_CUSTOMER.format(greatest="max"), rows.customer).fetchone()[0]
            conn.execute(_INSERT_CALL, (rows.call[0], customer_id, *rows.call[1:]))
            order_id = conn.execute(_INSERT_ORDER, (rows.order[0], customer_id, *rows.order[1:])).fetchone()[0]
            conn.executemany(_INSERT_LINE, [(order_id, *line) for line in rows.lines])
            conn.execute(_INSERT_FEEDBACK, (rows.feedback[0], customer_id, *rows.feedback[1:]))
            conn.executemany(_INSERT_MESSAGE, rows.messages)
            update = rows.update
            conn.execute(_UPDATE_CUSTOMER.format(greatest="max"), (*update[:3], order_id, *update[3:], customer_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def export(self) -> Child:
        """The ``sqlite3`` shell writing the export's CSV (same columns, formatting and order)."""
        shell = shutil.which("sqlite3")
        if shell is None:
            sys.exit(f"{Path(sys.argv[0]).stem}: the sqlite3 command-line shell is not installed")
        return Child([shell, "-csv", "-header", str(self.path)], stdin_text=SQLITE_EXPORT_SQL, env=EXPORT_ENVIRONMENT)


class RawPostgres:
    """The reference on PostgreSQL: one plain psycopg connection, autocommit, synchronous commit."""

    name = "psycopg"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn: psycopg.Connection[Any] = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def recall(self, identity: str) -> list[Any]:
        return self.conn.execute(POSTGRES_RECALL_SQL, (identity,)).fetchall()

    def finalize(self, snap: CallSnapshot) -> None:
        """The same rows as the repository's ``save_call`` of a final snapshot, in one transaction."""
        rows, conn = _FinalRows(snap), self.conn

        def pg(statement: str) -> str:
            return statement.replace("?", "%s")

        with conn.transaction():
            found = conn.execute(pg(_UPSERT_CUSTOMER.format(greatest="greatest")), rows.customer).fetchone()
            assert found is not None
            customer_id = found[0]
            conn.execute(pg(_INSERT_CALL), (rows.call[0], customer_id, *rows.call[1:]))
            placed = conn.execute(pg(_INSERT_ORDER), (rows.order[0], customer_id, *rows.order[1:])).fetchone()
            assert placed is not None
            order_id = placed[0]
            with conn.cursor() as cur:
                cur.executemany(pg(_INSERT_LINE), [(order_id, *line) for line in rows.lines])
                conn.execute(pg(_INSERT_FEEDBACK), (rows.feedback[0], customer_id, *rows.feedback[1:]))
                cur.executemany(pg(_INSERT_MESSAGE), rows.messages)
            update = rows.update
            conn.execute(
                pg(_UPDATE_CUSTOMER.format(greatest="greatest")), (*update[:3], order_id, *update[3:], customer_id)
            )

    def export(self) -> Child:
        """``psql \\copy`` writing the export's CSV (same columns, formatting and order)."""
        psql = shutil.which("psql")
        if psql is None:
            sys.exit(f"{Path(sys.argv[0]).stem}: psql is not installed (Debian: postgresql-client)")
        one_line = " ".join(POSTGRES_EXPORT_SQL.split())
        copy = f"\\copy ({one_line}) to stdout with (format csv, header)"
        return Child([psql, "-X", "-q", "-d", self.url, "-c", copy], env=EXPORT_ENVIRONMENT)


# -- the export -----------------------------------------------------------------------------------

EXPORT_SCRIPT = Path(__file__).resolve().parent / "export_orders.py"
# The restaurant's time zone for every tool: the export's from MEMORY_AGENT_TIMEZONE, the shell's from
# TZ (SQLite's ``localtime``, through the C library: a conversion of its own to compare with), psql's
# from PGTZ.
EXPORT_ZONE = "America/New_York"
EXPORT_ENVIRONMENT = {
    **os.environ,
    "MEMORY_AGENT_TIMEZONE": EXPORT_ZONE,
    "TZ": EXPORT_ZONE,
    "PGTZ": EXPORT_ZONE,
    "MEMORY_AGENT_RESTAURANT": "",
}


def product_export(target: Path | str) -> Child:
    """``memory-agent export`` (as ``scripts/export_orders.py``) of the file or URL ``target`` as CSV."""
    return Child([sys.executable, str(EXPORT_SCRIPT), "--db", str(target)], env=EXPORT_ENVIRONMENT)


# The export's CSV columns, formatting and order; the time in local time with its offset, as ISO
# 8601 writes it.
SQLITE_EXPORT_SQL = """
SELECT o.id AS order_id,
       strftime('%Y-%m-%dT%H:%M:%S', substr(o.created_at, 1, 19), 'localtime')
       || (SELECT printf('%s%02d:%02d', CASE WHEN m < 0 THEN '-' ELSE '+' END, abs(m) / 60, abs(m) % 60)
           FROM (SELECT CAST(round((julianday(substr(o.created_at, 1, 19), 'localtime')
                                    - julianday(substr(o.created_at, 1, 19))) * 1440) AS INTEGER) AS m)) AS created_at,
       c.participant_identity AS customer_identity,
       coalesce(c.name, k.caller_name) AS customer_name, o.status,
       (SELECT coalesce(sum(s.quantity), 0) FROM order_items AS s WHERE s.order_id = o.id) AS item_count,
       coalesce((SELECT group_concat(
           s.quantity || 'x ' || s.name || CASE WHEN s.modifications = '[]' THEN ''
               ELSE ' (' || (SELECT group_concat(value, ', ') FROM json_each(s.modifications)) || ')' END,
           ', ') FROM order_items AS s WHERE s.order_id = o.id), '') AS items,
       printf('%d.%02d', o.subtotal_cents / 100, o.subtotal_cents % 100) AS subtotal_dollars,
       printf('%d.%02d', o.tip_cents / 100, o.tip_cents % 100) AS tip_dollars,
       printf('%d.%02d', o.total_cents / 100, o.total_cents % 100) AS total_dollars,
       f.rating, o.kitchen_note
FROM orders AS o
LEFT JOIN customers AS c ON c.id = o.customer_id
LEFT JOIN calls AS k ON k.id = o.call_id
LEFT JOIN feedback AS f ON f.call_id = o.call_id
ORDER BY o.created_at, o.id;
"""
POSTGRES_EXPORT_SQL = """
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
_NEUTRALIZED = {"'" + ch for ch in "=+-@\t\r"}


def same_rows(exported: Path, reference: Path) -> int:
    """Compare two CSV files row by row (the export's neutralized cells lose their quote mark); the
    number of data rows. Exits where they differ."""
    count = 0
    with exported.open(newline="", encoding="utf-8") as a, reference.open(newline="", encoding="utf-8") as b:
        for mine, theirs in zip_longest(csv.reader(a), csv.reader(b)):
            if mine is None or theirs is None:
                sys.exit(f"{Path(sys.argv[0]).stem}: the exports differ in length after {count} rows")
            plain = [cell[1:] if cell[:2] in _NEUTRALIZED else cell for cell in mine]
            if plain != theirs:
                sys.exit(f"{Path(sys.argv[0]).stem}: row {count} of the exports differs:\n  {mine}\n  {theirs}")
            count += 1
    return count - 1


def export_against_raw(product: Child, raw: Child, folder: Path, *, repeat: int) -> dict[str, Any]:
    """The product's export against the raw tool's, ``repeat`` runs each after a warm-up of the raw
    one; both checked to hold the same rows."""
    tools = timed_children({"product": product, "raw": raw}, folder, repeat=repeat, warm="raw")
    rows = same_rows(tools["product"]["output"], tools["raw"]["output"])
    size = tools["product"]["output"].stat().st_size
    for tool in tools.values():
        tool.pop("output").unlink()
    return {"orders": rows, "bytes": size, "tools": tools}


# -- a PostgreSQL server --------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """A PostgreSQL server of its own on 127.0.0.1, with the default (durable) settings; its admin URL."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: float(p.parent.name), reverse=True)
    found = next((d for d in debian if (d / "initdb").is_file()), None)
    bin_dir = found or (Path(shutil.which("initdb") or "initdb").parent)
    if not (bin_dir / "initdb").is_file():
        sys.exit(f"{Path(sys.argv[0]).stem}: PostgreSQL is not installed (no initdb); give --url of a server")
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
                name = Path(command[len(as_postgres)]).name
                sys.exit(f"{Path(sys.argv[0]).stem}: {name} failed: {done.stderr.strip()}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``, dropped afterwards; its URL."""
    import psycopg
    from psycopg import sql

    name = f"memory_agent_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def redacted(url: str) -> str:
    """``url`` without its password, to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def copy_into_postgres(sqlite_path: Path, url: str) -> dict[str, float]:
    """Copy the SQLite file into the database ``url`` with ``memory-agent migrate-to-postgres``; rows
    copied and seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "memory_agent", "migrate-to-postgres", str(sqlite_path), url],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).stem}: migrate-to-postgres failed: {done.stderr.strip()[-2000:]}")
    rows = sum(
        int(line.split()[1].replace(",", ""))
        for line in done.stdout.splitlines()
        if line.strip().endswith("removed") and not line.startswith("Done")
    )
    return {"rows": rows, "seconds": seconds}


def server_facts(url: str) -> dict[str, str]:
    """The server's version and its durability and memory settings."""
    import psycopg

    with psycopg.connect(url) as conn:
        found: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings"
                " WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers')"
            ).fetchall()
        )
    version = found.pop("server_version", "?")
    return {
        "version": f"PostgreSQL {version}",
        "settings": ", ".join(f"{k} {v}" for k, v in sorted(found.items())),
        "psycopg": psycopg.__version__,
    }


# -- reports --------------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value: float) -> str:
    """Milliseconds as the reports show them: three decimals under 10, one above."""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def pair_rows(stats: dict[str, dict[str, float]], reference: str = "raw") -> list[list[str]]:
    """Rows of ``PAIR_HEADERS``: each contender's p50 and p99 and their ratio to ``reference``'s."""
    base = stats[reference]
    return [
        [
            name,
            ms(s["p50_ms"]),
            ms(s["p99_ms"]),
            f"{s['p50_ms'] / base['p50_ms']:.2f}x",
            f"{s['p99_ms'] / base['p99_ms']:.2f}x",
            str(int(s["n"])),
        ]
        for name, s in stats.items()
    ]


PAIR_HEADERS = ("path", "p50", "p99", "p50 vs raw", "p99 vs raw", "samples")


def status(value: float, goal: float) -> str:
    """``met`` or by how much ``value`` missed the ``goal`` (a ceiling)."""
    return "met" if value <= goal else f"missed by {100 * (value / goal - 1):.0f}%"


def machine_line() -> str:
    return f"{os.cpu_count()} CPUs; {platform.platform()}; Python {platform.python_version()}"


def write_json(path: Path | None, results: dict[str, Any]) -> None:
    """The raw figures as JSON at ``path`` (if given)."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2, default=str))
