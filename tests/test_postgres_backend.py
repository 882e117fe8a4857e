"""PostgreSQL behaves as SQLite does: the same rows from the same call, idempotent writes, the spool when
the server refuses, erasure, access requests and retention; and a dead host's calls are closed by another."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from test_trust import EMAIL, FIRST, FIRST_LINES, MARIA, WORD

from conftest import scripted_call
from db import CallSnapshot, CustomerMemory, DatabaseUnavailable, open_repository
from db.postgres.repository import PostgresRepository, postgres_spool_path
from db.schema.models import Message, Order, OrderLine
from db.spool import append
from memory_agent.scripted_llm import Say, ToolCall

BOB = [Say("Your name?"), ToolCall("save_customer_name", {"name": "Bob"}), Say("Hi Bob")]

# Columns whose values are the moment they were written, or the process that wrote them.
_WHEN = {
    "created_at",
    "last_seen_at",
    "started_at",
    "ended_at",
    "updated_at",
    "placed_at",
    "ready_at",
    "stated_at",
    "superseded_at",
    "first_seen_at",
    "owner_host",
    "owner_pid",
    "owner_started",
}
TABLES = ("customers", "calls", "orders", "order_items", "feedback", "messages", "caller_facts")


async def table_rows(repo, table: str) -> list[dict[str, object]]:
    """A table's (or view's) rows, without the columns that only say when or by whom it was written."""
    found = await repo.read(f"SELECT * FROM {table} ORDER BY 1", ())
    rows = [{key: row[key] for key in row.keys() if key not in _WHEN} for row in found]
    for row in rows:
        # Rows rewritten or upserted again take new ids from a PostgreSQL sequence (SQLite reuses freed ones):
        # lines and transcript rows are told apart by their position instead.
        row.pop("order_item_id", None)
        if table in ("order_items", "messages"):
            del row["id"]
        if table == "calls":
            row["id"] = "call"  # a fresh uuid per call
        for key in ("call_id", "day"):
            if key in row:
                row[key] = "same"
    return rows


def undated(memory: CustomerMemory | None) -> CustomerMemory | None:
    return None if memory is None else memory.model_copy(update={"last_order_at": None})


async def everything(repo) -> dict[str, list[dict[str, object]]]:
    return {table: await table_rows(repo, table) for table in TABLES}


async def a_history(repo) -> None:
    await scripted_call(repo, MARIA, FIRST, FIRST_LINES)
    await scripted_call(repo, "+14155550199", BOB, ["I'm Bob"])


# -- the same rows --------------------------------------------------------------------------------


async def test_one_scripted_call_leaves_the_same_rows_on_both_backends(tmp_path, pg_url):
    async with open_repository(tmp_path / "memory.db") as lite, open_repository(pg_url, spool_dir=tmp_path) as pg:
        await scripted_call(lite, MARIA, FIRST, FIRST_LINES)
        await scripted_call(pg, MARIA, FIRST, FIRST_LINES)
        on_sqlite, on_postgres = await everything(lite), await everything(pg)
        assert on_postgres == on_sqlite
        assert on_postgres["orders"][0]["status"] == "placed"
        assert len(on_postgres["messages"]) > 10
        assert undated(await pg.recall(MARIA)) == undated(await lite.recall(MARIA))
        assert [undated(p) for p in await pg.household(MARIA)] == [undated(p) for p in await lite.household(MARIA)]
        assert [o.items for o in await pg.past_orders(MARIA, 5)] == [o.items for o in await lite.past_orders(MARIA, 5)]
        [call_id] = [row[0] for row in await pg.read("SELECT id FROM calls", ())]
        summary = await pg.call_summary(call_id)
        assert summary["items"] == "2x Margherita Pizza" and summary["rating"] == 2


async def test_views_read_the_same_on_both_backends(tmp_path, pg_url):
    async with open_repository(tmp_path / "memory.db") as lite, open_repository(pg_url, spool_dir=tmp_path) as pg:
        for repo in (lite, pg):
            await a_history(repo)
        views = ("order_lines", "customer_summary", "daily_sales", "feedback_with_call", "allergy_roster")
        for view in views:
            assert await table_rows(pg, view) == await table_rows(lite, view), view
        assert len(await table_rows(pg, "order_lines")) == 1


async def test_a_repeated_or_late_snapshot_changes_nothing(any_repo):
    call = CallSnapshot(
        call_id="c1",
        identity=MARIA,
        caller_name="Maria",
        started_at="2026-11-01T12:00:00.000000+00:00",
        order=Order(
            status="placed",
            items=[OrderLine(menu_item="margherita", name="Margherita Pizza", quantity=2, unit_price_cents=1450)],
        ),
        messages=[Message(role="user", content="two margheritas", created_at="2026-11-01T12:00:01.000000+00:00")],
    )
    final = call.model_copy(update={"ended_at": "2026-11-01T12:05:00.000000+00:00", "end_reason": "finished"})
    await any_repo.save_call(call)
    await any_repo.save_call(final, forced=True)
    once = await everything(any_repo)
    await any_repo.save_call(final, forced=True)  # a spool replay of the final record
    await any_repo.save_call(call)  # a checkpoint that arrives after the end
    assert await everything(any_repo) == once
    assert [(c["call_count"], c["order_count"], c["lifetime_spend_cents"]) for c in once["customers"]] == [(1, 1, 2900)]


async def test_an_anonymous_call_joins_its_caller_once_known(any_repo):
    start = CallSnapshot(call_id="c1", started_at="2026-11-01T12:00:00.000000+00:00")
    await any_repo.save_call(start)
    order = Order(
        status="placed", items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)]
    )
    known = start.model_copy(update={"identity": MARIA, "order": order, "ended_at": "2026-11-01T12:09:00+00:00"})
    await any_repo.save_call(known)
    customer = await any_repo.customer(MARIA)
    assert customer is not None and (customer["call_count"], customer["order_count"]) == (1, 1)
    assert [tuple(r) for r in await any_repo.read("SELECT customer_id FROM calls", ())] == [(customer["id"],)]


async def test_a_bad_part_of_a_call_is_left_out_and_the_rest_kept(pg_url, tmp_path, caplog):
    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        snap = CallSnapshot(
            call_id="c1",
            identity=MARIA,
            caller_name="Mar\x00ia",  # NUL: PostgreSQL cannot store it, so it is stored as U+FFFD
            started_at="2026-11-01T12:00:00.000000+00:00",
            messages=[Message(role="user", content="hi\x00", created_at="2026-11-01T12:00:01+00:00")],
            ended_at="2026-11-01T12:01:00+00:00",
        )
        await repo.save_call(snap)
        assert [tuple(r) for r in await repo.read("SELECT name FROM customers", ())] == [("Mar\ufffdia",)]
        assert [tuple(r) for r in await repo.read("SELECT content FROM messages", ())] == [("hi\ufffd",)]


# -- the server refusing --------------------------------------------------------------------------


def refuse_connections(pg_url: str, refuse: bool) -> None:
    """Make the test's database refuse (or accept again) every connection, closing the open ones."""
    name = pg_url.rsplit("/", 1)[1]
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("false" if refuse else "true")
            )
        )
        if refuse:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


async def test_a_refused_write_is_spooled_and_replayed_once_at_the_next_open(pg_url, tmp_path):
    final = CallSnapshot(
        call_id="c1",
        identity=MARIA,
        caller_name="Maria",
        started_at="2026-11-01T12:00:00.000000+00:00",
        ended_at="2026-11-01T12:05:00.000000+00:00",
        end_reason="finished",
        messages=[Message(role="user", content="hello", created_at="2026-11-01T12:00:01+00:00")],
    )
    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        await repo.recovered()
        refuse_connections(pg_url, True)
        try:
            with pytest.raises(DatabaseUnavailable) as refused:
                await repo.save_call(final, forced=True)
            assert "\n" not in str(refused.value)
            await repo.spool(final)  # what the journal does with a refused write
        finally:
            refuse_connections(pg_url, False)
    spool_file = postgres_spool_path(pg_url, tmp_path)
    assert spool_file.exists()

    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        await repo.recovered()
        assert not spool_file.exists()
        rows = await repo.read("SELECT id, end_reason FROM calls", ())
        assert [tuple(r) for r in rows] == [("c1", "finished")]
        assert (await repo.customer(MARIA) or {})["call_count"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://someone:s3cret-pw@127.0.0.1:{port}/memory",
        "postgresql://someone:s3cret-pw@no-such-host.invalid/memory",
    ],
)
async def test_an_unreachable_server_at_start_is_one_line_without_the_password(url, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(DatabaseUnavailable) as refused:
        async with open_repository(url.format(port=port), spool_dir=tmp_path):
            pass
    message = str(refused.value)
    assert "\n" not in message and "s3cret" not in message and "memory" in message


# -- personal data --------------------------------------------------------------------------------


async def holding(repo: PostgresRepository, *needles: str) -> dict[str, list[str]]:
    """Which tables hold any of ``needles`` in any column, as text."""
    found: dict[str, list[str]] = {}
    tables = await repo.read("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()", ())
    for (table,) in tables:
        for needle in needles:
            hits = await repo.read(f"SELECT count(*) FROM {table} AS t WHERE strpos(t::text, ?) > 0", (needle,))
            if hits[0][0]:
                found.setdefault(table, []).append(needle)
    return found


async def test_forget_leaves_nothing_of_the_caller_in_any_table_and_counts_as_sqlite_does(pg_url, tmp_path):
    async with open_repository(tmp_path / "memory.db") as lite, open_repository(pg_url, spool_dir=tmp_path) as pg:
        assert isinstance(pg, PostgresRepository)
        for repo in (lite, pg):
            await a_history(repo)
        assert await holding(pg, "Maria", WORD, EMAIL, MARIA)

        erased = await pg.forget("tel:+14155550134".removeprefix("tel:"))
        assert erased == await lite.forget(MARIA)
        assert erased.counts["customers"] == 1 and erased.counts["messages"] > 10

        assert await holding(pg, "Maria", WORD, EMAIL, MARIA, "basil") == {}
        assert [tuple(r) for r in await pg.read("SELECT name FROM customers", ())] == [("Bob",)]
        [(subject, counts)] = [tuple(r) for r in await pg.read("SELECT subject, counts FROM erasures", ())]
        assert MARIA not in subject and len(subject) == 64 and json.loads(counts)["customers"] == 1
        assert (tmp_path / "memory-agent.erasure-key").exists()


async def test_forget_drops_the_callers_spooled_snapshots(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        await repo.recovered()
        # spooled by another process of this host (this one's drainer would write them at once)
        for call_id, identity in (("c9", MARIA), ("c8", "+14155550199")):
            snap = CallSnapshot(call_id=call_id, identity=identity, started_at="2026-11-01T12:00:00+00:00")
            append(repo.spool_file, snap)
        erased = await repo.forget(MARIA)
        in_database = [tuple(r) for r in await repo.read("SELECT count(*) FROM calls WHERE id = 'c9'", ())]
    # dropped from the spool, or (when the drainer wrote it first) erased from the database
    assert erased.counts["spool_lines"] == 1 or erased.counts["calls"] == 1
    assert in_database == [(0,)]
    spooled = postgres_spool_path(pg_url, tmp_path)
    left = spooled.read_text() if spooled.exists() else ""  # the drainer may have written the other caller's
    assert WORD not in left
    assert MARIA not in left


async def test_export_caller_gives_the_same_document_on_both_backends(pg_url, tmp_path):
    async with open_repository(tmp_path / "memory.db") as lite, open_repository(pg_url, spool_dir=tmp_path) as pg:
        for repo in (lite, pg):
            await a_history(repo)
        on_sqlite, on_postgres = await lite.export_caller(MARIA), await pg.export_caller(MARIA)

    def shape(document: object) -> object:
        if isinstance(document, dict):
            return {k: shape(v) for k, v in document.items() if k not in _WHEN and k not in ("id", "call_id")}
        if isinstance(document, list):
            return [shape(item) for item in document]
        return document

    assert shape(on_postgres) == shape(on_sqlite)
    assert on_postgres["profiles"][0]["email"] == EMAIL


async def test_purge_removes_old_transcripts_and_comments_and_keeps_the_books(any_repo):
    await a_history(any_repo)
    kept = await any_repo.purge_transcripts(older_than=timedelta(days=1))
    assert kept == {"calls": 0, "messages": 0, "comments": 0}
    done = await any_repo.purge_transcripts(older_than=timedelta(seconds=0))
    assert done["calls"] == 2 and done["comments"] == 1
    assert [tuple(r) for r in await any_repo.read("SELECT count(*) FROM messages", ())] == [(0,)]
    assert [tuple(r) for r in await any_repo.read("SELECT count(*), sum(total_cents) FROM orders", ())] == [(1, 2900)]


# -- calls left open ------------------------------------------------------------------------------


async def test_a_call_whose_hosts_heartbeat_ran_out_is_closed_and_a_live_hosts_is_left(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path, lease=timedelta(seconds=30)) as repo:
        await repo.recovered()
        for call_id, host, beat in (("dead", "host-a", "1 hour"), ("alive", "host-b", "0 seconds")):
            await repo.read(
                "INSERT INTO worker_hosts (host, pid, started, heartbeat_at)"
                f" VALUES (?, 7, 's', now() - interval '{beat}') RETURNING 1",
                (host,),
            )
            await repo.save_call(
                CallSnapshot(
                    call_id=call_id,
                    identity=MARIA,
                    started_at="2026-11-01T12:00:00.000000+00:00",
                    owner_host=host,
                    owner_pid=7,
                    owner_started="s",
                    order=Order(
                        status="in_progress",
                        items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)],
                    ),
                )
            )
        assert await repo.close_stale_calls() == ["dead"]
        rows = await repo.read(
            "SELECT c.id, c.end_reason, o.status FROM calls AS c JOIN orders AS o ON o.call_id = c.id ORDER BY 1", ()
        )
        (alive, dead) = [tuple(r) for r in rows]
        assert alive == ("alive", None, "in_progress")
        assert dead[0] == "dead" and dead[2] == "abandoned" and "pid 7 on host-a" in dead[1]


async def test_a_call_copied_from_another_backend_without_a_heartbeat_waits_for_the_long_lease(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        await repo.recovered()
        old = CallSnapshot(call_id="old", started_at="2026-01-01T12:00:00+00:00", owner_host="x", owner_pid=1)
        new = CallSnapshot(call_id="new", started_at="2999-01-01T12:00:00+00:00", owner_host="x", owner_pid=1)
        for snap in (old, new):
            await repo.save_call(snap)
        assert await repo.close_stale_calls() == ["old"]


async def test_this_processs_own_open_calls_are_never_closed(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path, lease=timedelta(seconds=1)) as repo:
        await repo.recovered()
        await repo.save_call(CallSnapshot(call_id="mine", started_at="2026-01-01T12:00:00+00:00"))
        assert await repo.close_stale_calls() == []


def test_spool_file_name_says_which_database_without_credentials(tmp_path: Path):
    path = postgres_spool_path("postgresql://u:pw@db.example.com:6543/memory", tmp_path)
    assert path.parent == tmp_path and "pw" not in path.name and "db.example.com_6543_memory" in path.name


async def test_a_deadlocked_or_unserializable_write_is_tried_again_not_spooled(pg_url, tmp_path):
    from psycopg import errors as pg_errors

    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        attempts = []

        async def chosen_as_a_deadlocks_victim_twice(conn) -> None:
            attempts.append(1)
            await conn.execute("INSERT INTO erasures (erased_at, subject, counts) VALUES ('t', 's', '{}')")
            if len(attempts) < 3:
                raise (pg_errors.DeadlockDetected if len(attempts) == 1 else pg_errors.SerializationFailure)("victim")

        await repo.run(chosen_as_a_deadlocks_victim_twice)
        assert len(attempts) == 3
        assert [tuple(r) for r in await repo.read("SELECT subject FROM erasures", ())] == [("s",)]


async def test_a_placed_order_stands_even_after_another_host_closed_its_call(any_repo):
    line = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)
    start = CallSnapshot(call_id="c1", identity="+15550001000", started_at="2026-11-01T18:00:00+00:00")
    await any_repo.save_call(start)
    # Another host judged this call's owner dead and closed it; the call was in fact going on.
    await close_as_abandoned(any_repo, "c1")
    placed = start.model_copy(update={"order": Order(status="placed", items=[line])})
    await any_repo.save_call(placed, forced=True)
    rows = await any_repo.read("SELECT status, total_cents FROM orders", ())
    assert [tuple(r) for r in rows] == [("placed", 750)]


async def close_as_abandoned(repo, call_id: str) -> None:
    """What another host's stale-call check does to a call it judged dead."""
    update = "UPDATE calls SET ended_at = '2026-11-01T18:01:00+00:00', end_reason = 'abandoned' WHERE id = "
    if isinstance(repo, PostgresRepository):

        async def body(conn) -> None:
            await conn.execute(update + "%s", (call_id,))

        await repo.run(body)
    else:
        await repo.writer.run(lambda db: db.execute(update + "?", (call_id,)))


async def test_a_part_the_database_refuses_is_left_out_and_the_rest_of_the_call_kept(any_repo, caplog):
    line = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)
    snap = CallSnapshot(
        call_id="c1",
        identity=MARIA,
        caller_name="Maria",
        started_at="2026-11-01T12:00:00.000000+00:00",
        order=Order(status="placed", items=[line], tip_cents=2**63),  # past any integer column
        messages=[Message(role="user", content="a tiramisu", created_at="2026-11-01T12:00:01+00:00")],
        ended_at="2026-11-01T12:01:00+00:00",
        end_reason="participant_disconnected",
    )
    await any_repo.save_call(snap, forced=True)

    async def rows(sql: str) -> list[tuple]:
        return [tuple(r) for r in await any_repo.read(sql, ())]

    assert await rows("SELECT count(*) FROM orders") == [(0,)]
    assert await rows("SELECT name FROM customers") == [("Maria",)]
    assert await rows("SELECT content FROM messages") == [("a tiramisu",)]
    assert await rows("SELECT end_reason FROM calls") == [("participant_disconnected",)]
    assert "call c1 written without 1 part(s)" in caplog.text
