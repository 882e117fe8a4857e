import sqlite3

import sqlalchemy as sa

from db.schema.models import CustomerRow
from db.statements.sql import compiled, greatest, table, upsert

CUSTOMERS = table(CustomerRow)


def _touch(dialect):
    return sa.update(CUSTOMERS).values(last_seen_at=greatest(CUSTOMERS.c.last_seen_at, sa.bindparam("at")))


def test_the_larger_of_two_values_in_each_dialect():
    assert "max(customers.last_seen_at, :at)" in compiled(_touch, "sqlite")
    assert "greatest(customers.last_seen_at, %(at)s)" in compiled(_touch, "postgresql")


def test_an_upsert_runs_on_sqlite_with_named_values():
    def add(dialect):
        insert = upsert(CUSTOMERS, dialect).values(
            participant_identity=sa.bindparam("who"), created_at=sa.bindparam("at")
        )
        return insert.on_conflict_do_nothing()

    sql = compiled(add, "sqlite")
    assert "RETURNING" not in compiled(add, "postgresql")
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, participant_identity TEXT UNIQUE, created_at TEXT,"
        " call_count INTEGER, order_count INTEGER, lifetime_spend_cents INTEGER)"
    )
    db.execute(sql, {"who": "+15550100", "at": "2026-12-07T10:00:00+00:00"})
    db.execute(sql, {"who": "+15550100", "at": "2026-12-07T11:00:00+00:00"})
    assert db.execute("SELECT participant_identity, created_at, call_count FROM customers").fetchall() == [
        ("+15550100", "2026-12-07T10:00:00+00:00", 0)  # the model's default, written in
    ]
