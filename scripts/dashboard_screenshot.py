"""The README's picture of the owner's dashboard, from a synthetic database, in headless Chromium.

    python scripts/dashboard_screenshot.py                 # writes docs/dashboard.png
    python scripts/dashboard_screenshot.py -o /tmp/d.png --keep-db /tmp/demo-dashboard.db

Ninety days of a made-up restaurant in New York (lunch and dinner peaks, regulars and first-time
callers, a few bad evenings), served by the real ``memory-agent inspect`` and photographed after
logging in with the link it prints. Deterministic: the same data every time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from harness import new_database
from headless_chromium import browser

from memory_agent.datasette import dashboard

ROOT = Path(__file__).resolve().parent.parent
ZONE = "America/New_York"
FIRST_DAY = date(2026, 8, 3)  # a Monday
DAYS = 91
MENU = (
    ("margherita_pizza", "Margherita Pizza", 1450, 30),
    ("pepperoni_pizza", "Pepperoni Pizza", 1600, 22),
    ("spaghetti_carbonara", "Spaghetti Carbonara", 1525, 14),
    ("caesar_salad", "Caesar Salad", 975, 12),
    ("tiramisu", "Tiramisu", 750, 18),
    ("garlic_bread", "Garlic Bread", 550, 16),
)
NAMES = ("Maria", "Tom", "Aisha", "Kenji", "Lucía", "Sam", "Priya", "Olu", "Grace", "Marco")
COMPLAINTS = ("the pizza arrived cold", "waited too long", "wrong order", "too salty")
END_REASONS = ("participant_disconnected", "participant_disconnected", "user_initiated", "job_shutdown")
_LOGIN = re.compile(r"(http://\S+/-/auth-token\?token=\w+)")


def build_database(path: Path, *, seed: int = 11) -> None:
    """Ninety days of orders, in the restaurant's local hours, written straight into a new file."""
    rng = random.Random(seed)
    zone = ZoneInfo(ZONE)
    new_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    customers: list[int] = []
    order_id = 0
    for day_number in range(DAYS):
        day = FIRST_DAY + timedelta(days=day_number)
        busy = 1.6 if day.weekday() >= 4 else 1.0
        for _ in range(int(rng.gauss(34, 5) * busy * (1 + day_number / 300))):
            hour = rng.choice((11, 12, 12, 13, 17, 18, 18, 19, 19, 19, 20, 20, 21))
            local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=zone)
            at = local.astimezone(UTC).isoformat(timespec="microseconds")
            if customers and rng.random() < 0.55:
                customer = rng.choice(customers[-400:])
            else:
                identity = f"+1212555{len(customers):04d}"
                customer = (
                    conn.execute(
                        "INSERT INTO customers (participant_identity, name, created_at, last_seen_at)"
                        " VALUES (?, ?, ?, ?)",
                        (identity, rng.choice(NAMES), at, at),
                    ).lastrowid
                    or 0
                )
                customers.append(customer)
            order_id += 1
            _call_with_order(conn, rng, order_id, customer, at)
    conn.execute(
        """UPDATE customers SET
             call_count = (SELECT count(*) FROM calls WHERE customer_id = customers.id),
             order_count = (SELECT count(*) FROM orders WHERE customer_id = customers.id AND status = 'placed'),
             lifetime_spend_cents = (SELECT coalesce(sum(total_cents), 0) FROM orders
                                     WHERE customer_id = customers.id AND status = 'placed'),
             last_seen_at = (SELECT max(started_at) FROM calls WHERE customer_id = customers.id)"""
    )
    conn.execute("COMMIT")
    conn.close()


def _call_with_order(conn: sqlite3.Connection, rng: random.Random, n: int, customer: int, at: str) -> None:
    call_id = f"call-{n:06d}"
    abandoned = rng.random() < 0.07
    reason = rng.choice(END_REASONS) if abandoned else "user_initiated"
    conn.execute(
        "INSERT INTO calls (id, customer_id, started_at, ended_at, end_reason) VALUES (?, ?, ?, ?, ?)",
        (call_id, customer, at, at, reason),
    )
    lines = rng.choices(MENU, weights=[item[3] for item in MENU], k=rng.randint(1, 4))
    subtotal = sum(price for _, _, price, _ in lines)
    tip = rng.choice((0, 0, 200, 300, 500))
    conn.execute(
        "INSERT INTO orders (id, call_id, customer_id, status, subtotal_cents, tip_cents, total_cents, payment_method,"
        " created_at, updated_at, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'card', ?, ?, ?)",
        (n, call_id, customer, "abandoned" if abandoned else "placed", subtotal, tip, subtotal + tip, at, at,
         None if abandoned else at),
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents)"
        " VALUES (?, ?, ?, ?, 1, ?)",
        [(n, position, item, name, price) for position, (item, name, price, _) in enumerate(lines, start=1)],
    )
    if not abandoned and rng.random() < 0.45:
        rating = rng.choices((1, 2, 3, 4, 5), weights=(3, 5, 10, 35, 47))[0]
        comment = rng.choice(COMPLAINTS) if rating <= 2 else "lovely, thank you"
        conn.execute(
            "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)",
            (call_id, customer, rating, comment, at),
        )


def photograph(db: Path, *, width: int = 1400) -> bytes:
    """Serve ``db`` with ``memory-agent inspect``, log in, open the dashboard on the data's range: a PNG."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MEMORY_AGENT_TIMEZONE": ZONE}
    command = [sys.executable, "-m", "memory_agent", "inspect", "--db", str(db), "--port", str(port)]
    server = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        login = _login_link(server)
        until = FIRST_DAY + timedelta(days=DAYS - 1)
        url = f"http://127.0.0.1:{port}/-/dashboards/{dashboard.SLUG}?since={FIRST_DAY}&until={until}"
        return asyncio.run(_shoot(login, url, width))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def _shoot(login: str, url: str, width: int) -> bytes:
    async with browser(width=width, height=900) as page:
        await page.goto(login)
        await page.goto(url)
        slugs = json.dumps(list(dashboard.CHARTS))
        ready = await page.wait_for(
            f"{slugs}.every(s => document.querySelector('#chart-' + s + ' svg, #chart-' + s + ' canvas,"
            " #chart-' + s + ' td, #chart-' + s + ' p'))",
            within_s=60,
        )
        if not ready:
            raise RuntimeError("the dashboard's charts did not all render")
        return await page.screenshot(width=width, height=900)


def _login_link(server: subprocess.Popen[str]) -> str:
    assert server.stderr is not None
    for line in server.stderr:
        if match := _LOGIN.search(line):
            return match.group(1)
    raise RuntimeError("memory-agent inspect stopped before printing its login link")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "dashboard.png", help="the PNG to write")
    parser.add_argument("--keep-db", type=Path, metavar="PATH", help="also keep the synthetic database here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memory-agent-screenshot-") as folder:
        db = Path(folder) / "bella.db"
        build_database(db)
        args.output.write_bytes(photograph(db))
        if args.keep_db:
            shutil.copyfile(db, args.keep_db)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
