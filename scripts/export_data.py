"""A synthetic database of any size, generated inside SQLite, for the export benchmark.

Deterministic: the same ``orders`` gives the same rows. Names include commas, quotes,
accents and a formula-like value, so an export of it exercises quoting and neutralization.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from harness import new_database

# Menu rows for the synthetic orders; the export does not care whether they match today's menu.
_MENU = (
    ("margherita_pizza", "Margherita Pizza", 1450),
    ("pepperoni_pizza", "Pepperoni Pizza", 1600),
    ("caesar_salad", "Caesar Salad", 975),
    ("spaghetti_carbonara", "Spaghetti Carbonara", 1525),
    ("tiramisu", "Tiramisu", 750),
)
_NAMES = ("Maria", "José Álvarez", 'Sam "Sammy" Lee', "O'Brien, Pat", "Zoë", "=HYPERLINK(1)", "Li Wei 李伟")

_FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :customers)
INSERT INTO customers (id, participant_identity, name, created_at, last_seen_at, call_count)
SELECT i, printf('+1555%07d', i),
       CASE WHEN i % 9 = 0 THEN NULL ELSE json_extract(:names, printf('$[%d]', i % 7)) END,
       '2025-01-01T00:00:00.000000+00:00', '2025-01-01T00:00:00.000000+00:00', 1
FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :orders)
INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason)
SELECT printf('call-%08d', i), CASE WHEN i % 25 = 0 THEN NULL ELSE 1 + (i * 7919) % :customers END,
       NULL, strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2025-01-01', printf('+%d seconds', i * 30)),
       strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2025-01-01', printf('+%d seconds', i * 30 + 240)),
       'participant_disconnected'
FROM n;

INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents, modifications)
SELECT o.i, p.position, json_extract(:menu, printf('$[%d][0]', (o.i + p.position) % 5)),
       json_extract(:menu, printf('$[%d][1]', (o.i + p.position) % 5)),
       1 + (o.i * p.position) % 3,
       json_extract(:menu, printf('$[%d][2]', (o.i + p.position) % 5)),
       CASE WHEN (o.i + p.position) % 6 = 0 THEN '["extra basil", "no onions"]' ELSE '[]' END
FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :orders) SELECT i FROM n) AS o
JOIN (SELECT 1 AS position UNION ALL SELECT 2 UNION ALL SELECT 3) AS p ON p.position <= 1 + o.i % 3;

INSERT INTO orders (id, call_id, customer_id, status, subtotal_cents, tip_cents, total_cents,
                    payment_method, created_at, updated_at, placed_at)
SELECT k.rowid, k.id, k.customer_id,
       CASE WHEN k.rowid % 10 = 0 THEN 'abandoned' WHEN k.rowid % 10 = 1 THEN 'in_progress' ELSE 'placed' END,
       s.subtotal, (k.rowid % 4) * 100, s.subtotal + (k.rowid % 4) * 100, 'card',
       k.started_at, k.ended_at, CASE WHEN k.rowid % 10 > 1 THEN k.ended_at END
FROM calls AS k
JOIN (SELECT order_id, sum(quantity * unit_price_cents) AS subtotal FROM order_items GROUP BY order_id) AS s
  ON s.order_id = k.rowid;

INSERT INTO feedback (call_id, customer_id, rating, comment, created_at)
SELECT id, customer_id, 1 + rowid % 5,
       CASE rowid % 3 WHEN 0 THEN 'The pizza was cold, again' WHEN 1 THEN 'Great, thanks!' ELSE '' END,
       ended_at
FROM calls WHERE rowid % 5 = 0;
"""


def build_synthetic_database(path: str | Path, *, orders: int, customers: int | None = None) -> None:
    """Create a new database at ``path`` (which must not exist) holding ``orders`` orders."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    customers = customers or max(1, orders // 20)
    new_database(target)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        params = {
            "customers": customers,
            "orders": orders,
            "names": json.dumps(_NAMES, ensure_ascii=False),
            "menu": json.dumps(_MENU),
        }
        conn.execute("BEGIN")
        for statement in filter(str.strip, _FILL.split(";\n")):
            conn.execute(statement, {k: v for k, v in params.items() if f":{k}" in statement})
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
