"""scripts/harness.py: contenders take turns, percentiles, and raw references that write what the repository writes."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from db import open_repository

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # the scripts import each other as top-level modules
_spec = importlib.util.spec_from_file_location("harness", ROOT / "scripts" / "harness.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
sys.modules["harness"] = harness
_spec.loader.exec_module(harness)
import bench_data  # noqa: E402  (after the scripts' folder is importable)


async def test_contenders_take_turns_going_first_and_each_is_prepared_just_before_its_run():
    log: list[str] = []

    async def later(name: str) -> None:
        log.append(name)

    contenders = {"a": lambda: log.append("a"), "b": lambda: later("b"), "c": lambda: log.append("c")}
    stats = await harness.interleaved(3, contenders, warmup=1, before=lambda name: log.append(f"before {name}"))

    runs = [entry for entry in log if not entry.startswith("before")]
    assert runs == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert all(log[i] == f"before {log[i + 1]}" for i in range(0, len(log), 2))
    assert {name: s["n"] for name, s in stats.items()} == {"a": 3, "b": 3, "c": 3}  # the warm-up round is left out


def test_percentiles_are_nearest_rank_in_milliseconds():
    seconds = [n / 1000 for n in range(100, -1, -1)]  # 0 to 100 ms, in any order

    assert harness.percentiles(seconds) == {"p50_ms": 50.0, "p99_ms": 99.0, "n": 101}
    assert harness.percentile([], 0.5) == 0.0


_WRITTEN = {
    "customer": "SELECT household = participant_identity, name, email, call_count, order_count, lifetime_spend_cents,"
    " last_rating, last_feedback_comment FROM customers WHERE participant_identity = ?",
    "call": "SELECT caller_name, started_at, ended_at, end_reason FROM calls WHERE id = ?",
    "order": "SELECT status, subtotal_cents, tip_cents, total_cents, payment_method FROM orders WHERE call_id = ?",
    "lines": "SELECT i.position, i.menu_item, i.name, i.quantity, i.unit_price_cents, i.modifications,"
    " i.accepted_allergens FROM order_items AS i JOIN orders AS o ON o.id = i.order_id WHERE o.call_id = ?"
    " ORDER BY i.position",
    "feedback": "SELECT rating, comment FROM feedback WHERE call_id = ?",
    "messages": "SELECT seq, role, agent, content FROM messages WHERE call_id = ? ORDER BY seq",
}


def _written(query: Callable[[str, str], list[Any]], call_id: str, identity: str) -> dict[str, list[Any]]:
    """What a finished call left, without row ids, owners and the times the product sets itself."""
    return {
        name: [tuple(row) for row in query(sql, identity if name == "customer" else call_id)]
        for name, sql in _WRITTEN.items()
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_raw_reference_writes_the_rows_the_repository_writes_and_reads_them_back(backend, tmp_path, request):
    target = str(tmp_path / "memory.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    mine = bench_data.finished_call("call-product", "+15550000001")
    theirs = mine.model_copy(update={"call_id": "call-raw", "identity": "+15550000002"})
    async with open_repository(target, spool_dir=tmp_path) as repo:
        await repo.save_call(mine, forced=True)
    raw = harness.RawSqlite(target) if backend == "sqlite" else harness.RawPostgres(target)
    try:
        raw.finalize(theirs)
        looked_up = raw.recall("+15550000002")
        if backend == "sqlite":
            query = lambda sql, value: raw.conn.execute(sql, (value,)).fetchall()  # noqa: E731
        else:
            query = lambda sql, value: raw.conn.execute(sql.replace("?", "%s"), (value,)).fetchall()  # noqa: E731
        written = _written(query, "call-raw", "+15550000002")
        assert written == _written(query, "call-product", "+15550000001")
    finally:
        raw.close()

    assert written["customer"][0][0] and len(written["lines"]) == 5 and len(written["messages"]) == 60
    assert [row[-6] for row in looked_up] == ["margherita_pizza", "pepperoni_pizza", "caesar_salad",
                                              "spaghetti_carbonara", "tiramisu"]  # fmt: skip
