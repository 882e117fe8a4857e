"""The views over the tables (for Datasette, the owner's questions and the reports): one text for both databases.

A view holds no data, so it is not migrated: each time the schema is brought up to date (``db.schema.alembic``),
a view whose stored text differs from this one is dropped and created again, after the revisions ran. A
change to a view is an edit here and nothing else. Where the databases differ in types, a ``CAST`` says
what both must return (``BIGINT``: SQLite's INTEGER; ``DOUBLE PRECISION``: SQLite's REAL). ``order_lines`` has
every column of an order line (``db.schema.models.OrderLine``): a new field is in it with nothing more to do.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text

from db.schema.models import OrderLine, columns

VIEWS: dict[str, str] = {
    "order_lines": """
SELECT i.id AS order_item_id, i.order_id, o.call_id, o.customer_id, c.label AS customer,
       o.status, o.created_at, i.position, """
    + ", ".join(f"i.{name}" for name in columns(OrderLine))
    + """,
       i.quantity * i.unit_price_cents AS line_total_cents, o.kitchen_note
FROM order_items AS i
JOIN orders AS o ON o.id = i.order_id
LEFT JOIN customers AS c ON c.id = o.customer_id""",
    "customer_summary": """
SELECT c.id AS customer_id, c.label AS customer, c.participant_identity, c.name, c.email,
       (SELECT count(*) FROM calls WHERE calls.customer_id = c.id) AS calls,
       (SELECT count(*) FROM orders AS o WHERE o.customer_id = c.id AND o.status = 'placed') AS orders,
       (SELECT CAST(coalesce(sum(o.total_cents), 0) AS BIGINT) FROM orders AS o
         WHERE o.customer_id = c.id AND o.status = 'placed') AS spend_cents,
       (SELECT CAST(round(avg(f.rating), 2) AS DOUBLE PRECISION) FROM feedback AS f
         WHERE f.customer_id = c.id) AS average_rating,
       c.created_at AS first_seen_at, c.last_seen_at
FROM customers AS c""",
    "daily_sales": """
SELECT substr(coalesce(placed_at, created_at), 1, 10) AS day,
       count(*) AS orders,
       CAST(sum((SELECT sum(quantity) FROM order_items WHERE order_id = o.id)) AS BIGINT) AS items,
       CAST(sum(subtotal_cents) AS BIGINT) AS subtotal_cents,
       CAST(sum(tip_cents) AS BIGINT) AS tip_cents,
       CAST(sum(total_cents) AS BIGINT) AS total_cents,
       CAST(round(avg(total_cents)) AS BIGINT) AS average_order_cents
FROM orders AS o
WHERE status = 'placed'
GROUP BY day""",
    "feedback_with_call": """
SELECT f.id AS feedback_id, f.created_at, f.rating, f.comment, f.call_id, f.customer_id,
       c.label AS customer, calls.caller_name, calls.started_at, calls.ended_at, calls.end_reason,
       o.id AS order_id, o.status AS order_status, o.total_cents AS order_total_cents,
       (SELECT count(*) FROM messages AS m WHERE m.call_id = f.call_id) AS messages
FROM feedback AS f
JOIN calls ON calls.id = f.call_id
LEFT JOIN customers AS c ON c.id = f.customer_id
LEFT JOIN orders AS o ON o.call_id = f.call_id""",
    "allergy_roster": """
SELECT f.customer_id, c.label AS customer, f.topic AS allergen, f.value AS as_said,
       f.stated_at, f.call_id
FROM caller_facts AS f JOIN customers AS c ON c.id = f.customer_id
WHERE f.kind = 'allergy' AND f.superseded_at IS NULL AND f.value IS NOT NULL""",
    "caller_preferences": """
SELECT f.customer_id, c.label AS customer, f.topic AS about, f.value AS preference,
       f.stated_at, f.call_id
FROM caller_facts AS f JOIN customers AS c ON c.id = f.customer_id
WHERE f.kind = 'preference' AND f.superseded_at IS NULL AND f.value IS NOT NULL""",
}


def create_sql(name: str) -> str:
    return f"CREATE VIEW {name} AS{VIEWS[name]}"


def _mark(name: str) -> str:
    """What PostgreSQL keeps of the text a view was created from (it stores the view parsed, not as written)."""
    return "memory-agent view " + hashlib.sha256(VIEWS[name].encode()).hexdigest()[:16]


def _stored(connection: Connection, name: str) -> str | None:
    """The stored counterpart of ``create_sql(name)`` (SQLite) or ``_mark(name)`` (PostgreSQL); None: no such view."""
    if connection.dialect.name == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = :name"
    else:
        query = (
            "SELECT coalesce(obj_description(c.oid, 'pg_class'), '') FROM pg_class AS c"
            " WHERE c.relname = :name AND c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace"
        )
    found = connection.execute(text(query), {"name": name}).scalar()
    return None if found is None else str(found)


def _expected(connection: Connection, name: str) -> str:
    return create_sql(name) if connection.dialect.name == "sqlite" else _mark(name)


def up_to_date(connection: Connection) -> bool:
    """Every view is there, created from this text."""
    return all(_stored(connection, name) == _expected(connection, name) for name in VIEWS)


def drop(connection: Connection) -> None:
    """Drop every view (a revision may then alter the tables under them); ``ensure`` creates them again."""
    for name in VIEWS:
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")


def ensure(connection: Connection) -> None:
    """Create again each view whose stored text is not this one, in the caller's transaction."""
    for name in VIEWS:
        if _stored(connection, name) == _expected(connection, name):
            continue
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
        connection.exec_driver_sql(create_sql(name))
        if connection.dialect.name != "sqlite":
            connection.exec_driver_sql(f"COMMENT ON VIEW {name} IS '{_mark(name)}'")
