"""PostgreSQL erasure reaches the pages: no erased word in any table's or index's data, the search index included."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from test_trust import EMAIL, MARIA, WORD, maria_called_once, memory_agent

from conftest import scripted_call
from db import open_repository
from db.postgres import privacy as pg_privacy
from memory_agent.scripted_llm import Say, ToolCall

# Every page of every relation of the database's own schema and of the TOAST tables, read by the
# server itself (pageinspect), the free space of each page included: the data, not only the rows.
PAGES_HOLDING = """
SELECT c.oid::regclass::text
FROM pg_class AS c
WHERE c.relkind IN ('r', 'i', 't', 'm') AND c.relpersistence = 'p'
  AND c.relnamespace IN ('public'::regnamespace, 'pg_toast'::regnamespace)
  AND pg_relation_size(c.oid) > 0
  AND EXISTS (SELECT 1 FROM generate_series(0, pg_relation_size(c.oid) / current_setting('block_size')::int - 1) AS b
              WHERE position(%(needle)s::bytea IN get_raw_page(c.oid::regclass::text, b::int)) > 0)
ORDER BY 1
"""
# What the search index itself holds: its entries (lexemes) as the server lists them.
SEARCH_LEXEMES = """
SELECT word FROM ts_stat('SELECT to_tsvector(''english'', content) FROM messages')
"""
REBUILDING = "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'REINDEX TABLE CONCURRENTLY messages%'"


def relations_holding(url: str, *needles: str) -> dict[str, list[str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        conn.execute("CHECKPOINT")
        found = {}
        for needle in needles:
            rows = conn.execute(PAGES_HOLDING, {"needle": needle.encode()}).fetchall()
            if rows:
                found[needle] = [row[0] for row in rows]
        return found


# Each word as it is in the heap, and as the full-text index stores it (stemmed, lower case).
NEEDLES = (EMAIL, "maria.rossi", WORD, "zucchinifritt", "4155550134")


@pytest.fixture
async def maria_and_bob(pg_url, tmp_path) -> str:
    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        await maria_called_once(repo)
        bob = [Say("Your name?"), ToolCall("save_customer_name", {"name": "Bob"}), Say("Hi Bob")]
        await scripted_call(repo, "+14155550199", bob, ["I'm Bob, the pizza was cold"])
    return pg_url


async def test_forget_leaves_no_erased_word_in_any_page_of_any_table_or_index(maria_and_bob, tmp_path):
    url = maria_and_bob
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    before = relations_holding(url, *NEEDLES)
    assert "ix_messages_search" in before["zucchinifritt"] and "messages" in before[WORD]  # the check sees them

    done = memory_agent("forget", MARIA, "--db", url, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert relations_holding(url, *NEEDLES) == {}
    with psycopg.connect(url) as conn:  # nor in the planner's samples of the columns' values
        sampled = conn.execute("SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats").fetchall()
        assert not [row for row in sampled if any(n in str(row) for n in NEEDLES + ("Maria",))]
    with psycopg.connect(url) as conn:
        lexemes = {row[0] for row in conn.execute(SEARCH_LEXEMES)}
        assert "bob" in lexemes and not {w for w in lexemes if "zucchini" in w or "rossi" in w}
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute("EXPLAIN SELECT 1 FROM messages WHERE to_tsvector('english', content) @@ 'cold'")
        assert "ix_messages_search" in " ".join(row[0] for row in plan)  # the rebuilt index is in use


async def test_a_table_busy_past_the_lock_timeout_is_cleaned_online_and_its_indexes_still_rebuilt(
    maria_and_bob, tmp_path, monkeypatch
):
    url = maria_and_bob
    monkeypatch.setattr(pg_privacy, "REWRITE_LOCK_TIMEOUT", "100ms")
    with psycopg.connect(url) as reader, psycopg.connect(url, autocommit=True) as watcher:
        reader.execute("LOCK TABLE messages IN ACCESS SHARE MODE")  # a long report reading the transcripts
        async with open_repository(url, spool_dir=tmp_path) as repo:
            forgetting = asyncio.ensure_future(repo.forget(MARIA))
            # The rewrite gave up waiting; the online rebuild waits for the report to end before it swaps.
            for _ in range(1200):
                if watcher.execute(REBUILDING).fetchone() or forgetting.done():
                    break
                await asyncio.sleep(0.05)
            reader.rollback()
            erased = await asyncio.wait_for(forgetting, timeout=120)

    assert erased.counts["customers"] == 1 and not erased.log_emptied  # said: not every table was rewritten
    left = relations_holding(url, *NEEDLES)
    assert all(relation == "messages" for relations in left.values() for relation in relations), left


async def test_an_erasure_during_calls_cleans_the_indexes_without_rewriting_the_tables(maria_and_bob, tmp_path):
    url = maria_and_bob
    files = "SELECT pg_relation_filenode('messages'), pg_relation_filenode('ix_messages_search')"
    with psycopg.connect(url) as conn:
        table_before, index_before = conn.execute(files).fetchone()

    async with open_repository(url, spool_dir=tmp_path) as repo:  # as forget_me does, at the end of a call
        erased = await repo.forget(MARIA, exact=True, online=True)

    assert erased.counts["customers"] == 1 and not erased.log_emptied  # the note: not rewritten
    with psycopg.connect(url) as conn:
        table_after, index_after = conn.execute(files).fetchone()
        lexemes = {row[0] for row in conn.execute(SEARCH_LEXEMES)}
    assert table_after == table_before  # the table was not rewritten (no lock held over the calls' writes)
    assert index_after != index_before  # its search index was rebuilt...
    held = relations_holding(url, "zucchinifritt").get("zucchinifritt", [])
    assert "ix_messages_search" not in held  # ...and holds no erased word (the table's free space may)
    assert "bob" in lexemes and not {w for w in lexemes if "zucchini" in w or "rossi" in w}
