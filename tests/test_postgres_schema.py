"""PostgreSQL's schema is SQLite's: the same tables, columns, views and indexes, migrated once."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest

from db.postgres import migrate as postgres
from db.schema.models import SQLModel
from db.sqlite import migrate

POSTGRES_ONLY_TABLES = {t.name for t in SQLModel.metadata.tables.values() if t.info.get("dialects") == ("postgresql",)}


def sqlite_schema() -> dict[str, dict[str, list[tuple[str, bool]]]]:
    """SQLite's latest schema: tables and views with their columns (and whether each is NOT NULL)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate.migrate(conn)
        found: dict[str, dict[str, list[tuple[str, bool]]]] = {"table": {}, "view": {}}
        for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')"):
            if "_fts" in name:
                continue  # FTS5's tables: PostgreSQL indexes the text in place
            info = conn.execute(f"PRAGMA table_xinfo({name})").fetchall()
            found[kind][name] = [(row[1], bool(row[3]) or (kind == "table" and bool(row[5]))) for row in info]
        return found
    finally:
        conn.close()


def sqlite_indexes() -> set[str]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate.migrate(conn)
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        return {row[0] for row in found}
    finally:
        conn.close()


async def postgres_schema(url: str) -> tuple[dict[str, dict[str, list[tuple[str, bool]]]], set[str]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await postgres.migrate(conn)
        found: dict[str, dict[str, list[tuple[str, bool]]]] = {"table": {}, "view": {}}
        cur = await conn.execute(
            "SELECT t.table_type, c.table_name, c.column_name, c.is_nullable = 'NO'"
            " FROM information_schema.columns AS c JOIN information_schema.tables AS t USING (table_schema, table_name)"
            " WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.ordinal_position"
        )
        for table_type, table, column, not_null in await cur.fetchall():
            kind = "view" if table_type == "VIEW" else "table"
            found[kind].setdefault(table, []).append((column, kind == "table" and not_null))
        cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        indexes = {row[0] for row in await cur.fetchall()}
        return found, indexes


async def test_postgres_has_sqlites_tables_with_the_same_columns_in_the_same_order(pg_url):
    pg, _ = await postgres_schema(pg_url)
    lite = sqlite_schema()
    assert set(pg["table"]) - POSTGRES_ONLY_TABLES == set(lite["table"])
    for table, columns in lite["table"].items():
        # SQLite reports an INTEGER PRIMARY KEY as nullable; PostgreSQL's key is NOT NULL, as it is in effect.
        assert [name for name, _ in pg["table"][table]] == [name for name, _ in columns], table
        pg_not_null = {name for name, not_null in pg["table"][table] if not_null and name != "id"}
        assert pg_not_null == {name for name, not_null in columns if not_null and name != "id"}, table


async def test_postgres_has_sqlites_views_with_the_same_columns(pg_url):
    pg, _ = await postgres_schema(pg_url)
    lite = sqlite_schema()
    assert set(pg["view"]) == set(lite["view"])
    for view, columns in lite["view"].items():
        assert [name for name, _ in pg["view"][view]] == [name for name, _ in columns], view


async def test_postgres_has_sqlites_indexes_and_searches_text_with_its_own(pg_url):
    _, indexes = await postgres_schema(pg_url)
    named = {name for name in indexes if name.startswith("ix_")}
    assert named - sqlite_indexes() == {"ix_messages_search", "ix_feedback_search"}
    assert sqlite_indexes() <= named


async def test_the_full_text_search_finds_words_in_any_form(pg_url):
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await postgres.migrate(conn)
        await conn.execute("INSERT INTO calls (id, started_at) VALUES ('c1', '2026-01-01T00:00:00+00:00')")
        await conn.execute(
            "INSERT INTO messages (call_id, seq, role, content, created_at) VALUES"
            " ('c1', 1, 'user', 'The pizzas arrived cold', 'x'), ('c1', 2, 'user', 'Thanks!', 'x')"
        )
        search = f"{postgres.MESSAGES_SEARCH} @@ websearch_to_tsquery(%s, %s)"
        query = f"SELECT seq FROM messages WHERE {search} ORDER BY seq"
        cur = await conn.execute(query, (postgres.SEARCH_CONFIG, "pizza arriving"))
        assert await cur.fetchall() == [(1,)]
        cur = await conn.execute(query, (postgres.SEARCH_CONFIG, "cold -crust"))
        assert await cur.fetchall() == [(1,)]
        plan = await conn.execute("SET enable_seqscan = off")
        plan = await conn.execute("EXPLAIN " + query, (postgres.SEARCH_CONFIG, "cold"))
        assert "ix_messages_search" in " ".join(row[0] for row in await plan.fetchall())


async def test_hosts_starting_at_once_migrate_once(pg_url):
    async def one() -> int:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            return await postgres.migrate(conn)

    assert await asyncio.gather(*(one() for _ in range(6))) == [postgres.LATEST_VERSION] * 6
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in await cur.fetchall()] == list(range(1, postgres.LEGACY_VERSION + 1))
        cur = await conn.execute("SELECT version_num FROM alembic_version")
        assert await cur.fetchall() == [(f"{postgres.LATEST_VERSION:04d}",)]


async def test_a_database_holding_other_tables_is_refused(pg_url):
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE invoices (id int)")
        with pytest.raises(Exception, match="not a memory-agent database"):
            await postgres.migrate(conn)
