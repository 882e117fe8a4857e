"""A synthetic memory-agent database at a chosen scale, built with bulk SQL and cached by scale.

The schema is the product's (``db.prepare_database``); the rows are generated inside SQLite by
``INSERT ... SELECT`` over recursive series, so a million customers (ten million orders) take
minutes, not hours. Every row is deterministic: call ``n`` (1-based) is order ``n``, placed by
customer ``(n - 1) % customers + 1``, so each customer's ten orders are spread over the two
years the data covers, as real orders are. A few named callers with exactly 1, 10, 100 and
1,000 orders follow the regular ones. ``finished_call`` is a typical call's final record, the
end-of-call write the benchmarks time.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness import new_database, schema_tag

from db import CallSnapshot, Feedback, Message, Order, OrderLine

# Bump when the generated data changes, so cached files are rebuilt.
DATA_VERSION = 2
ORDERS_PER_CUSTOMER = 10
MESSAGES_PER_CALL = 4
SPECIAL_ORDER_COUNTS = (1, 10, 100, 1000)
START_EPOCH = 1_672_531_200  # 2023-01-01T00:00:00Z
SPAN_SECONDS = 2 * 365 * 24 * 3600

FIRST_NAMES = ("Maria", "James", "Aiko", "Omar", "Lucia", "Chen", "Priya", "Lars", "Fatima", "Diego")
COMMENTS = ("", "great as always", "the pizza was cold", "delivery was late", "lovely tiramisu", "")
PHRASES = (
    "Hi, I'd like to order for pickup",
    "Welcome back to Bella Vista! The same as last time?",
    "Yes please, and add a tiramisu",
    'add_to_order({"item": "tiramisu", "quantity": 1})',
    "Added 1x Tiramisu. Anything else?",
    "That's all, thank you",
    "Your order is placed and will be ready in 25 minutes.",
    "Five stars, the carbonara was perfect",
)
# The order pattern repeats every 12 calls: items depend on n % 4 and n % 6.
PATTERN = 12


@dataclass(frozen=True)
class BuiltDatabase:
    path: Path
    customers: int
    build_seconds: float | None  # as measured when the file was built (None if unknown)
    size_bytes: int
    cached: bool


def regular_identity(customer_id: int) -> str:
    return f"+1555{customer_id:07d}"


def special_identity(order_count: int) -> str:
    return f"bench-orders-{order_count}"


MESSAGES_PER_FINISHED_CALL = 60
_ITEMS: tuple[tuple[str, str, int, int, list[str]], ...] = (
    ("margherita_pizza", "Margherita Pizza", 2, 1450, ["extra basil"]),
    ("pepperoni_pizza", "Pepperoni Pizza", 1, 1600, []),
    ("caesar_salad", "Caesar Salad", 1, 975, ["no croutons"]),
    ("spaghetti_carbonara", "Spaghetti Carbonara", 1, 1525, []),
    ("tiramisu", "Tiramisu", 2, 750, []),
)


def finished_call(call_id: str, identity: str) -> CallSnapshot:
    """A typical finished call's final record: a placed order of 5 items, feedback, 60 transcript messages."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return CallSnapshot(
        call_id=call_id,
        identity=identity,
        started_at=now,
        caller_name="Maria",
        email="maria@example.com",
        order=Order(
            status="placed",
            items=[
                OrderLine(menu_item=i, name=n, quantity=q, unit_price_cents=p, modifications=m)
                for i, n, q, p, m in _ITEMS
            ],
            tip_cents=300,
            payment_method="card",
        ),
        feedback=Feedback(rating=4, comment="quick and friendly"),
        messages=[
            Message(
                role="user" if seq % 2 else "assistant",
                agent="ordertaker",
                content=f"Message {seq} of the call: a sentence about as long as people say on the phone.",
                created_at=now,
            )
            for seq in range(MESSAGES_PER_FINISHED_CALL)
        ],
        ended_at=now,
        end_reason="participant_disconnected",
    )


def cached_database(customers: int, cache_dir: Path, *, rebuild: bool = False) -> BuiltDatabase:
    """The database for ``customers`` regular callers: from the cache, or built now."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"bench-{customers}-s{schema_tag()}-d{DATA_VERSION}.db"
    info = path.with_suffix(".json")
    if path.exists() and not rebuild:
        built = json.loads(info.read_text()) if info.exists() else {}
        return BuiltDatabase(path, customers, built.get("build_seconds"), path.stat().st_size, cached=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    build(partial, customers)
    seconds = time.perf_counter() - started
    os.replace(partial, path)
    # The build writes with synchronous=OFF: flush it now, or the measurements' fsyncs pay for it.
    os.sync()
    info.write_text(json.dumps({"build_seconds": seconds}))
    return BuiltDatabase(path, customers, seconds, path.stat().st_size, cached=False)


def build(path: Path, customers: int) -> None:
    """Create the schema with the product's migrations, then bulk-insert the synthetic history."""
    new_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "locking_mode = EXCLUSIVE",
            "temp_store = MEMORY",
            "cache_size = -1000000",
            "foreign_keys = OFF",
        ):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        _pattern_tables(conn)
        regular_calls = customers * ORDERS_PER_CUSTOMER
        _add_history(conn, 1, regular_calls, f"(n - 1) % {customers} + 1", "n", regular_calls)
        first = regular_calls + 1
        for offset, count in enumerate(SPECIAL_ORDER_COUNTS, start=1):
            last = first + count - 1
            # Every named caller's last order has the same three items, so lookups compare fairly.
            pattern_of_n = f"({last} - n + 2)"
            _add_history(conn, first, last, str(customers + offset), pattern_of_n, regular_calls)
            first += count
        _add_customers(conn, customers)
        conn.execute("DROP TABLE temp.pattern_items")
        conn.execute("DROP TABLE temp.phrases")
        conn.execute("COMMIT")
        conn.execute("PRAGMA locking_mode = NORMAL")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _pattern_tables(conn: sqlite3.Connection) -> None:
    from memory_agent.menu import load_menu  # imported here: the writer processes need only ``db``

    menu = load_menu().items
    conn.execute(
        "CREATE TEMP TABLE pattern_items (r INTEGER, position INTEGER, menu_item TEXT, name TEXT,"
        " quantity INTEGER, unit_price_cents INTEGER, modifications TEXT)"
    )
    rows = []
    for r in range(PATTERN):
        for position in range(1, 2 + r % 4):
            item = menu[(r + 3 * position) % len(menu)]
            mods = '["extra basil"]' if (r + position) % 5 == 0 else "[]"
            rows.append((r, position, item.id, item.name, 1 + (r + position) % 2, item.price_cents, mods))
    conn.executemany("INSERT INTO temp.pattern_items VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("CREATE TEMP TABLE phrases (k INTEGER PRIMARY KEY, text TEXT)")
    conn.executemany("INSERT INTO temp.phrases VALUES (?, ?)", list(enumerate(PHRASES)))


def _series(lo: int, hi: int) -> str:
    return f"WITH RECURSIVE s(n) AS (SELECT {lo} UNION ALL SELECT n + 1 FROM s WHERE n < {hi})"


def _when(n: str, regular_calls: int, offset_s: int | str = 0) -> str:
    """An ISO timestamp for call ``n``: the calls are spread evenly over SPAN_SECONDS."""
    step = SPAN_SECONDS / max(regular_calls, 1)
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {START_EPOCH} + {offset_s} + CAST(({n}) * {step} AS INTEGER),"
        " 'unixepoch') || '.000000+00:00'"
    )


def _add_history(
    conn: sqlite3.Connection, lo: int, hi: int, customer_of_n: str, pattern_of_n: str, regular_calls: int
) -> None:
    """Calls ``lo..hi`` with their orders, items, feedback (every third call) and messages."""
    # Special callers' calls are numbered after the regular ones; fold them back into the span.
    when_n = f"((n - 1) % {regular_calls} + 1)"
    series = _series(lo, hi)
    conn.execute(
        f"{series} INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason)"
        f" SELECT printf('s%010d', n), {customer_of_n}, NULL, {_when(when_n, regular_calls)},"
        f" {_when(when_n, regular_calls, 300)}, 'participant_disconnected' FROM s"
    )
    conn.execute(
        f"{series}, totals(r, subtotal) AS"
        " (SELECT r, sum(quantity * unit_price_cents) FROM temp.pattern_items GROUP BY r)"
        " INSERT INTO orders (id, call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,"
        " payment_method, created_at, updated_at, placed_at)"
        f" SELECT n, printf('s%010d', n), {customer_of_n}, 'placed', t.subtotal, (n % 5) * 100,"
        f" t.subtotal + (n % 5) * 100, CASE n % 2 WHEN 0 THEN 'card' ELSE 'cash' END,"
        f" {_when(when_n, regular_calls, 60)}, {_when(when_n, regular_calls, 240)},"
        f" {_when(when_n, regular_calls, 240)}"
        f" FROM s JOIN totals AS t ON t.r = {pattern_of_n} % {PATTERN} ORDER BY n"
    )
    conn.execute(
        f"{series} INSERT INTO order_items (order_id, position, menu_item, name, quantity,"
        " unit_price_cents, modifications)"
        " SELECT n, p.position, p.menu_item, p.name, p.quantity, p.unit_price_cents, p.modifications"
        f" FROM s JOIN temp.pattern_items AS p ON p.r = {pattern_of_n} % {PATTERN} ORDER BY n, p.position"
    )
    comments = " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(COMMENTS))
    conn.execute(
        f"{series} INSERT INTO feedback (call_id, customer_id, rating, comment, created_at)"
        f" SELECT printf('s%010d', n), {customer_of_n}, 1 + n % 5, CASE n % {len(COMMENTS)} {comments} END,"
        f" {_when(when_n, regular_calls, 280)} FROM s WHERE n % 3 = 0"
    )
    conn.execute(
        f"{series}, seqs(seq) AS"
        f" (SELECT 1 UNION ALL SELECT seq + 1 FROM seqs WHERE seq < {MESSAGES_PER_CALL})"
        " INSERT INTO messages (call_id, seq, role, agent, content, created_at)"
        " SELECT printf('s%010d', n), seq, CASE seq % 2 WHEN 1 THEN 'user' ELSE 'assistant' END,"
        " CASE WHEN seq <= 2 THEN 'greeter' ELSE 'ordertaker' END, ph.text,"
        f" {_when(when_n, regular_calls, 'seq * 20')}"
        f" FROM s, seqs JOIN temp.phrases AS ph ON ph.k = (n + seq) % {len(PHRASES)} ORDER BY n, seq"
    )


def _add_customers(conn: sqlite3.Connection, customers: int) -> None:
    """Customers with the aggregates the product keeps (counts, spend, last order, last rating)."""
    names = " ".join(f"WHEN {i} THEN '{n}'" for i, n in enumerate(FIRST_NAMES))
    comments = " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(COMMENTS))
    specials = " ".join(
        f"WHEN {customers + i} THEN '{special_identity(count)}'"
        for i, count in enumerate(SPECIAL_ORDER_COUNTS, start=1)
    )
    # Each caller is the only profile on their number (``household``), as the product writes them.
    conn.execute(
        "INSERT INTO customers (id, participant_identity, household, name, email, created_at, last_seen_at,"
        " call_count, order_count, lifetime_spend_cents, last_order_id, last_rating, last_feedback_comment)"
        f" SELECT cid, identity, identity, CASE cid % {len(FIRST_NAMES)} {names} END,"
        " CASE WHEN cid % 4 = 0 THEN printf('caller%d@example.com', cid) END,"
        " first_at, last_at, orders, orders, spend, last_order,"
        f" 1 + last_fb % 5, CASE last_fb % {len(COMMENTS)} {comments} END"
        " FROM (SELECT customer_id AS cid,"
        f" CASE customer_id {specials} ELSE '+1555' || printf('%07d', customer_id) END AS identity,"
        " count(*) AS orders, sum(total_cents) AS spend,"
        " max(id) AS last_order,"
        " max(CASE WHEN id % 3 = 0 THEN id END) AS last_fb, min(created_at) AS first_at,"
        " max(updated_at) AS last_at FROM orders GROUP BY customer_id ORDER BY customer_id)"
    )
