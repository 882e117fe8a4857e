"""What callers tell us about themselves, as the data layer keeps it: provenance, superseding,
withdrawal, late replays, erasure; the usual order and the past orders a caller can ask about."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from db import CallSnapshot, Order, OrderLine, open_repository
from db.schema.models import CallerFact
from db.sqlite.migrate import migrate


async def read(repo, sql: str) -> list[tuple]:
    """Rows through the repository, on either backend."""
    return [tuple(row) for row in await repo.read(sql, ())]


FIXTURES = Path(__file__).parent / "fixtures"
CALLER = "+15551230000"


def fact(kind: str, topic: str, value: str | None, at: str) -> CallerFact:
    return CallerFact(kind=kind, topic=topic, value=value, stated_at=at)  # type: ignore[arg-type]


def snapshot(call_id: str, day: int, *, facts=(), items=(), placed=True, identity=CALLER) -> CallSnapshot:
    at = f"2026-10-{day:02d}T18:00:00.000000+00:00"
    lines = [
        OrderLine(menu_item=menu_item, name=menu_item.replace("_", " ").title(), quantity=qty, unit_price_cents=1000)
        for menu_item, qty in items
    ]
    order = Order(status="placed" if placed else "abandoned", items=lines) if lines else None
    return CallSnapshot(
        call_id=call_id,
        identity=identity,
        started_at=at,
        ended_at=at.replace("18:00", "18:05"),
        end_reason="participant_disconnected",
        order=order,
        facts=list(facts),
    )


def at(day: int, minute: int = 1) -> str:
    return f"2026-10-{day:02d}T18:{minute:02d}:00.000000+00:00"


async def test_a_new_statement_supersedes_the_old_which_stays_as_history(any_repo):
    await any_repo.save_call(snapshot("c1", 1, facts=[fact("preference", "diet", "vegetarian", at(1))]))
    await any_repo.save_call(snapshot("c2", 2, facts=[fact("preference", "diet", "eats meat again", at(2))]))
    memory = await any_repo.recall(CALLER)
    assert memory is not None
    assert [(f.topic, f.value) for f in memory.facts] == [("diet", "eats meat again")]
    history = await read(any_repo, "SELECT call_id, value, superseded_at FROM caller_facts ORDER BY stated_at")
    assert history == [("c1", "vegetarian", at(2)), ("c2", "eats meat again", None)]


async def test_a_withdrawn_allergy_is_no_longer_recalled_but_its_history_is_kept(any_repo):
    await any_repo.save_call(snapshot("c1", 1, facts=[fact("allergy", "tree nuts", "pine nuts", at(1))]))
    assert [f.topic for f in (await any_repo.recall(CALLER)).facts] == ["tree nuts"]
    await any_repo.save_call(snapshot("c2", 2, facts=[fact("allergy", "tree nuts", None, at(2))]))
    assert (await any_repo.recall(CALLER)).facts == ()
    assert await read(any_repo, "SELECT call_id, value FROM caller_facts ORDER BY stated_at") == [
        ("c1", "pine nuts"),
        ("c2", None),
    ]


async def test_a_late_replay_of_an_older_call_does_not_undo_a_newer_statement(any_repo):
    await any_repo.save_call(snapshot("newer", 5, facts=[fact("preference", "crust", "well done", at(5))]))
    await any_repo.save_call(snapshot("older", 1, facts=[fact("preference", "crust", "soft", at(1))]))
    memory = await any_repo.recall(CALLER)
    assert [(f.topic, f.value) for f in memory.facts] == [("crust", "well done")]


async def test_writing_the_same_snapshot_twice_changes_nothing(any_repo):
    snap = snapshot(
        "c1", 1, facts=[fact("allergy", "milk", "dairy", at(1)), fact("preference", "onions", "none", at(1))]
    )
    await any_repo.save_call(snap)
    before = await read(any_repo, "SELECT * FROM caller_facts ORDER BY id")
    await any_repo.save_call(snap)
    assert await read(any_repo, "SELECT * FROM caller_facts ORDER BY id") == before
    assert len(before) == 2


async def test_facts_of_an_unknown_caller_are_not_kept(any_repo):
    await any_repo.save_call(snapshot("anon", 1, identity=None, facts=[fact("allergy", "egg", "eggs", at(1))]))
    assert await read(any_repo, "SELECT count(*) FROM caller_facts") == [(0,)]


async def test_allergies_come_first_then_the_newest_preferences(any_repo):
    await any_repo.save_call(
        snapshot(
            "c1",
            1,
            facts=[
                fact("preference", "crust", "well done", at(1, 1)),
                fact("allergy", "sesame", "sesame", at(1, 2)),
                fact("preference", "onions", "no onions ever", at(1, 3)),
            ],
        )
    )
    memory = await any_repo.recall(CALLER)
    assert [f.topic for f in memory.facts] == ["sesame", "onions", "crust"]
    assert [f.topic for f in memory.current("allergy")] == ["sesame"]


async def test_the_usual_is_the_most_frequent_recent_order(any_repo):
    pizza, pasta = [("margherita_pizza", 2), ("tiramisu", 1)], [("spaghetti_carbonara", 1)]
    for day, items in enumerate([pizza, pasta, pizza, pizza, pasta], start=1):
        await any_repo.save_call(snapshot(f"c{day}", day, items=items))
    memory = await any_repo.recall(CALLER)
    assert [(line.menu_item, line.quantity) for line in memory.last_order_items] == pasta
    assert [(line.menu_item, line.quantity) for line in memory.usual_items] == pizza


async def test_the_usual_counts_only_placed_orders_and_breaks_ties_by_recency(any_repo):
    await any_repo.save_call(snapshot("c1", 1, items=[("tiramisu", 1)]))
    await any_repo.save_call(snapshot("c2", 2, items=[("caesar_salad", 1)]))
    await any_repo.save_call(snapshot("c3", 3, items=[("tiramisu", 1)], placed=False))
    memory = await any_repo.recall(CALLER)
    assert [line.menu_item for line in memory.usual_items] == ["caesar_salad"]


async def test_past_orders_are_newest_first_and_bounded(any_repo):
    for day, item in enumerate(["tiramisu", "caesar_salad", "margherita_pizza", "pepperoni_pizza"], start=1):
        await any_repo.save_call(snapshot(f"c{day}", day, items=[(item, day)]))
    past = await any_repo.past_orders(CALLER, 3)
    assert [(o.created_at[:10], [(i.menu_item, i.quantity) for i in o.items]) for o in past] == [
        ("2026-10-04", [("pepperoni_pizza", 4)]),
        ("2026-10-03", [("margherita_pizza", 3)]),
        ("2026-10-02", [("caesar_salad", 2)]),
    ]
    assert await any_repo.past_orders("+15559999999", 3) == []


async def test_a_household_member_never_sees_anothers_facts(any_repo):
    await any_repo.save_call(snapshot("c1", 1, facts=[fact("allergy", "fish", "fish", at(1))]))
    other = CallSnapshot(
        call_id="c2", identity=CALLER + "#2", household=CALLER, started_at=at(2), ended_at=at(2, 5), end_reason="x"
    )
    await any_repo.save_call(other)
    profiles = {p.key: p for p in await any_repo.household(CALLER)}
    assert [f.topic for f in profiles[CALLER].facts] == ["fish"]
    assert profiles[CALLER + "#2"].facts == ()


async def test_forget_erases_facts_and_export_caller_lists_them(any_repo, backend):
    await any_repo.save_call(snapshot("c1", 1, facts=[fact("allergy", "tree nuts", "pine nuts", at(1))]))
    exported = await any_repo.export_caller(CALLER)
    assert [(f["topic"], f["value"]) for f in exported["profiles"][0]["facts"]] == [("tree nuts", "pine nuts")]
    erasure = await any_repo.forget(CALLER)
    assert erasure.counts["caller_facts"] == 1
    assert backend.rows("SELECT count(*) FROM caller_facts") == [(0,)]
    assert backend.holds("pine nuts") == {}


async def test_upgrading_finds_each_callers_usual_order(tmp_path):
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    path.write_bytes((FIXTURES / "schema_v5.db").read_bytes())
    conn = sqlite3.connect(path)
    migrate(conn)
    conn.close()
    async with open_repository(path) as repo:
        memory = await repo.recall("+15551234567")
    assert memory is not None
    assert [line.menu_item for line in memory.usual_items] == ["margherita_pizza", "tiramisu"]
    assert memory.usual_items == memory.last_order_items
