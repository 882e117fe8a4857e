"""What calls cost: their usage at the configured prices, per call and per order, by the restaurant's day."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from datasette.app import Datasette

from db import CallSnapshot, Order, OrderLine
from db.schema.models import CallUsage
from memory_agent.costs import cost_micros
from memory_agent.datasette import dashboard
from memory_agent.datasette.serve import register_plugin
from memory_agent.inspect import ROOT_ACTOR, load_metadata
from memory_agent.settings import Prices, Settings

PIZZA = OrderLine(menu_item="margherita_pizza", name="Margherita Pizza", quantity=1, unit_price_cents=1450)
# Round prices, so that the expected costs read at a glance.
PRICES = Prices(
    llm_input=Decimal(1), llm_cached=Decimal("0.5"), llm_output=Decimal(2), stt_minute=Decimal("0.01"), tts=Decimal(10)
)


def test_a_calls_cost_is_each_usage_at_its_price_exactly():
    usage = CallUsage(
        llm_prompt_tokens=10_000,
        llm_cached_tokens=4_000,
        llm_completion_tokens=500,
        stt_audio_ms=90_000,
        tts_characters=1_200,
    )
    # 6,000 uncached at 0.15, 4,000 cached at 0.075, 500 out at 0.60, 1,200 characters at 15 (per million),
    # and a minute and a half of speech at 0.0077: 0.0009 + 0.0003 + 0.0003 + 0.018 + 0.01155
    assert cost_micros(usage, Prices()) == 31_050
    assert cost_micros(CallUsage(), Prices()) == 0


def test_prices_are_settings_in_decimal_text():
    settings = Settings(_env_file=None, MEMORY_AGENT_PRICE_LLM_INPUT="2.50", MEMORY_AGENT_PRICE_TTS="0")  # type: ignore[call-arg]
    assert settings.prices == Prices(llm_input=Decimal("2.50"), tts=Decimal(0))
    with pytest.raises(ValueError, match="MEMORY_AGENT_PRICE_STT_MINUTE"):
        Settings(_env_file=None, MEMORY_AGENT_PRICE_STT_MINUTE="-1")  # type: ignore[call-arg]


def _call(call_id: str, started_at: str, usage: CallUsage, *, placed: bool) -> CallSnapshot:
    return CallSnapshot(
        call_id=call_id,
        started_at=started_at,
        ended_at=started_at,
        end_reason="user_initiated",
        order=Order(status="placed", items=[PIZZA]) if placed else None,
        **usage.model_dump(),
    )


@pytest.fixture
async def ds(repo, db_path: Path) -> Datasette:
    # Two calls on July 4th in New York (the second after midnight UTC), one on the 5th.
    for snap in (
        _call("a", "2026-07-04T14:00:00.000000+00:00", CallUsage(llm_prompt_tokens=1_000_000), placed=False),
        _call(
            "b",
            "2026-07-05T02:00:00.000000+00:00",
            CallUsage(llm_completion_tokens=500_000, stt_audio_ms=60_000),
            placed=True,
        ),
        _call(
            "c", "2026-07-05T15:00:00.000000+00:00", CallUsage(llm_cached_tokens=0, tts_characters=1_000), placed=False
        ),
    ):
        await repo.save_call(snap)
    register_plugin()
    datasette = Datasette(
        [str(db_path)], metadata=load_metadata(db_path.stem, timezone="America/New_York", prices=PRICES)
    )
    await datasette.invoke_startup()
    return datasette


async def chart_rows(ds: Datasette, slug: str) -> list[dict]:
    params = {"sql": dashboard.CHARTS[slug]["query"], "since": "2026-07-01", "until": "2026-07-31", "_shape": "objects"}
    cookies = {"ds_actor": ds.sign({"a": ROOT_ACTOR}, "actor")}
    response = await ds.client.get("/memory.json", params=params, cookies=cookies)
    assert response.status_code == 200, response.text[:500]
    return response.json()["rows"]


async def test_the_dashboard_shows_what_calls_cost_by_day_per_call_and_per_order(ds):
    # a: a million input tokens at 1 = 1.00; b: half a million out at 2 and a minute of speech at 0.01 = 1.01;
    # c: a thousand characters at 10 a million = 0.01
    assert await chart_rows(ds, "costs_by_day") == [
        {"day": "2026-07-05", "calls": 1, "orders": 0, "cost": "$0.0100", "per call": "$0.0100", "per order": "-"},
        {
            "day": "2026-07-04",
            "calls": 2,
            "orders": 1,
            "cost": "$2.0100",
            "per call": "$1.0050",
            "per order": "$2.0100",
        },
    ]
    assert await chart_rows(ds, "cost_per_call") == [{"cost": "$0.6733"}]
    assert await chart_rows(ds, "cost_per_order") == [{"cost": "$2.0200"}]


async def test_the_calls_table_shows_each_calls_usage(ds):
    cookies = {"ds_actor": ds.sign({"a": ROOT_ACTOR}, "actor")}
    response = await ds.client.get("/memory/calls.json?_shape=objects&id=b", cookies=cookies)
    assert response.status_code == 200, response.text[:500]
    (row,) = response.json()["rows"]
    assert (row["llm_completion_tokens"], row["stt_audio_ms"], row["llm_requests"]) == (500_000, 60_000, 0)
