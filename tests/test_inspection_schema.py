"""Migration 2: a database Datasette can browse: keys, labels, views and full-text search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import open_call, rows, scripted_call
from db import CallSnapshot, Feedback, Message, open_repository
from db.schema.alembic import legacy
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS

TABLES = ("customers", "calls", "orders", "order_items", "feedback", "messages")


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_xinfo({table})")]


async def test_every_id_column_declares_its_foreign_key_and_leads_an_index(repo, db_path):
    conn = sqlite3.connect(db_path)
    for table in TABLES:
        keys = {row[3] for row in conn.execute(f"PRAGMA foreign_key_list({table})")}
        leading = {
            conn.execute(f"PRAGMA index_info({index[1]})").fetchone()[2]
            for index in conn.execute(f"PRAGMA index_list({table})")
        }
        for column in _columns(conn, table):
            if column.endswith("_id"):
                assert column in keys, f"{table}.{column} has no foreign key"
                assert column in leading, f"{table}.{column} is not indexed"
    conn.close()


async def test_customer_label_is_name_and_identity_or_identity_alone(repo, db_path):
    await open_call(repo, call_id="a", identity="+15550000001", started_at="2025-01-01T00:00:00+00:00")
    named = CallSnapshot(
        call_id="b", identity="+15550000002", started_at="2025-01-01T00:00:00+00:00", caller_name="Maria"
    )
    await repo.save_call(named)

    assert rows(db_path, "SELECT label FROM customers ORDER BY id") == [
        ("+15550000001",),
        ("Maria (+15550000002)",),
    ]


async def test_views_answer_the_common_questions(repo, db_path):
    await scripted_call(repo, "alice", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    await scripted_call(repo, "alice", RETURN_CALL_STEPS, RETURN_CALL_LINES)

    assert rows(db_path, "SELECT customer, calls, orders, spend_cents, average_rating FROM customer_summary") == [
        ("Maria (alice)", 2, 2, 7300, 2.0)
    ]
    assert rows(db_path, "SELECT order_id, name, quantity, line_total_cents FROM order_lines WHERE order_id = 1") == [
        (1, "Margherita Pizza", 2, 2900),
        (1, "Tiramisu", 1, 750),
    ]
    assert rows(db_path, "SELECT orders, items, total_cents, average_order_cents FROM daily_sales") == [
        (2, 6, 7300, 3650)
    ]
    [(rating, comment, customer, order_total, messages)] = rows(
        db_path, "SELECT rating, comment, customer, order_total_cents, messages FROM feedback_with_call"
    )
    assert (rating, comment, customer, order_total) == (
        2,
        "the pizza arrived cold",
        "Maria (alice)",
        3650,
    )
    assert (
        messages == rows(db_path, "SELECT count(*) FROM messages WHERE call_id = (SELECT call_id FROM feedback)")[0][0]
    )


def _search(db_path: Path, table: str, phrase: str) -> list[int]:
    return [
        r[0] for r in rows(db_path, f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ? ORDER BY rowid", [phrase])
    ]


def _record(call_id: str, *said: str, feedback: Feedback | None = None) -> CallSnapshot:
    return CallSnapshot(
        call_id=call_id,
        feedback=feedback,
        messages=[Message(role="user", content=text, created_at="2025-01-01T00:00:00+00:00") for text in said],
        ended_at="2025-01-01T00:05:00+00:00",
        end_reason="finished",
    )


async def test_search_follows_messages_as_they_are_written_rewritten_and_deleted(repo, db_path):
    await repo.save_call(_record("c1", "the crust was burnt", "extra anchovies please"))
    assert _search(db_path, "messages", '"crust was burnt"') == [1]

    # finalize again with a corrected transcript: the repository upserts the same rows
    await repo.save_call(_record("c1", "the crust was perfect", "extra anchovies please"))
    assert _search(db_path, "messages", '"crust was burnt"') == []
    assert _search(db_path, "messages", '"crust was perfect"') == [1]

    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DELETE FROM messages WHERE seq = 2")
    conn.close()
    assert _search(db_path, "messages", "anchovies") == []


async def test_search_follows_feedback_comments(repo, db_path):
    await repo.save_call(_record("c1", feedback=Feedback(rating=2, comment="delivery was slow")))
    await repo.save_call(_record("c1", feedback=Feedback(rating=4, comment="lovely tiramisù")))

    assert _search(db_path, "feedback", "slow") == []
    assert _search(db_path, "feedback", "tiramisu") == [1]  # accents folded


async def test_migration_indexes_rows_written_before_it(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    legacy.sqlite_file_at(conn, 1)
    conn.execute("INSERT INTO calls (id, started_at) VALUES ('c', '2025-01-01T00:00:00+00:00')")
    conn.execute(
        "INSERT INTO messages (call_id, seq, role, content, created_at)"
        " VALUES ('c', 1, 'user', 'my pizza arrived cold', '2025-01-01T00:00:00+00:00')"
    )
    conn.execute(
        "INSERT INTO feedback (call_id, rating, comment, created_at)"
        " VALUES ('c', 1, 'cold pizza again', '2025-01-01T00:00:00+00:00')"
    )
    conn.close()

    async with open_repository(path):
        pass

    assert rows(path, "SELECT max(version) FROM schema_migrations") == [(legacy.SQLITE[-1].version,)]
    assert _search(path, "messages", '"pizza arrived cold"') == [1]
    assert _search(path, "feedback", "cold") == [1]
