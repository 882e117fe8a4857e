"""The owner's first five minutes: the login lands on the dashboard; times read in the restaurant's local
time in tables and views; why calls ended, in words; charts readable with a single day of data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from conftest import open_call
from db import CallSnapshot, Order
from db.clock import to_iso
from inspect_server import serve
from memory_agent.datasette import dashboard
from memory_agent.datasette.sqlfunctions import OUTCOME_WORDS, TRANSFER_REASON_WORDS, end_reason_words
from test_dashboard import NEW_YORK, chart_rows, cookies, ds, seeded  # noqa: F401  (fixtures)
from test_dashboard_browser import PIZZA, TIRAMISU, headless_chromium


def test_the_login_link_lands_on_the_owners_dashboard(repo, db_path, tmp_path):
    with serve(db_path, tmp_path) as served, httpx.Client(timeout=30) as client:
        landed = client.get(served.login)
    assert landed.status_code == 302
    assert landed.headers["location"] == f"/-/dashboards/{dashboard.SLUG}"


async def test_tables_and_views_show_times_in_the_restaurants_local_time(ds):  # noqa: F811
    # The summer order was placed at 02:30 UTC on July 4th: 22:30 on July 3rd in New York.
    orders = await ds.client.get("/memory/orders", cookies=cookies(ds))
    assert "2026-07-03 22:30 EDT" in orders.text
    assert 'title="2026-07-04T02:30:00.000000+00:00"' in orders.text  # the stored time, on hover
    lines = await ds.client.get("/memory/order_lines", cookies=cookies(ds))
    assert "2026-07-03 22:30 EDT" in lines.text and "2026-01-14 22:10 EST" in lines.text


async def test_why_a_call_ended_reads_in_words(ds):  # noqa: F811
    calls = await ds.client.get("/memory/calls", cookies=cookies(ds))
    assert ">the caller hung up</td>" in calls.text and ">participant_disconnected</td>" not in calls.text
    [abandoned] = await chart_rows(ds, "abandoned")
    assert abandoned["reason"] == "the caller hung up"


async def test_facets_list_end_reasons_outcomes_and_reasons_in_words(ds):  # noqa: F811
    calls = (await ds.client.get("/memory/calls", cookies=cookies(ds))).text
    facets = calls[calls.index('class="facet-results"') : calls.index("</table>") if "</table>" in calls else None]
    for words in ("the caller hung up", "the agent ended the call", "Order placed", "Message taken", "Caller hung up"):
        assert f">{words}</a>" in facets, words
    for code in ("participant_disconnected", "user_initiated", "order_placed", "message_taken", "hung_up"):
        assert f">{code}<" not in facets, code
    messages = (await ds.client.get("/memory/staff_messages?_facet=reason", cookies=cookies(ds))).text
    assert ">A complaint</a>" in messages and ">complaint</a>" not in messages
    # A chosen value reads in words too, and the filter still uses the code.
    chosen = (await ds.client.get("/memory/calls?outcome=message_taken", cookies=cookies(ds))).text
    assert "Message taken &middot; 1" in chosen


def test_the_dashboards_outcome_words_are_the_facets():
    query = dashboard.CHARTS["outcomes"]["query"]
    assert all(f"'{words}'" in query for words in OUTCOME_WORDS.values())
    assert all(f"'{words}'" in dashboard.CHARTS["transfers"]["query"] for words in TRANSFER_REASON_WORDS.values())


async def test_the_callers_history_reads_in_local_time_and_words(ds):  # noqa: F811
    page = (await ds.client.get("/memory/caller?identity=555-123-4567", cookies=cookies(ds))).text
    assert "2026-07-03 22:30 EDT" in page and 'title="2026-07-04T02:30:00.000000+00:00"' in page
    assert "the agent ended the call as Maria" in page and "user_initiated" not in page


def test_every_end_reason_has_words():
    said = {
        reason: end_reason_words(reason)
        for reason in (
            "participant_disconnected",
            "user_initiated",
            "job_shutdown",
            "caller_silent",
            "error",
            "abandoned: the process running the call (host 1234) died before the call ended",
            None,
        )
    }
    assert all("_" not in words and "(" not in words for words in said.values()), said


# Each axis of a chart and its labels, as drawn.
AXES = """((slug) => Object.fromEntries([...document.querySelectorAll('#chart-' + slug + ' g.role-axis')].map(
  axis => [axis.getAttribute('aria-label') || '', [...axis.querySelectorAll('g.role-axis-label text')]
    .map(t => t.textContent)])))"""


async def test_charts_read_well_with_a_single_days_orders(repo, db_path, tmp_path):
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for n in range(3):
        at = to_iso(today + timedelta(minutes=7 * n))
        await open_call(repo, call_id=f"c{n}", identity=f"+1555000100{n}", started_at=at)
        await repo.save_call(
            CallSnapshot(
                call_id=f"c{n}",
                identity=f"+1555000100{n}",
                caller_name="Maria",
                order=Order(status="placed", items=[PIZZA, TIRAMISU]),
                ended_at=at,
                end_reason="participant_disconnected",
            )
        )
    with serve(db_path, tmp_path) as served:
        async with headless_chromium.browser() as page:
            await page.goto(served.login)  # lands on the dashboard
            drawn = " && ".join(
                f"!!document.querySelector('#chart-{slug} svg g.role-axis-label text')"
                for slug in ("sales_per_day", "orders_by_hour", "top_items")
            )
            assert await page.wait_for(drawn, within_s=60)
            per_day = await page.evaluate(f"{AXES}('sales_per_day')")
            by_hour = await page.evaluate(f"{AXES}('orders_by_hour')")
            top = await page.evaluate(f"{AXES}('top_items')")

    [day_labels] = [labels for name, labels in per_day.items() if name.startswith("X-axis")]
    assert day_labels and len(day_labels) == len(set(day_labels)), day_labels
    for axes, name in ((by_hour, "Y-axis"), (top, "X-axis")):
        [counts] = [labels for label, labels in axes.items() if label.startswith(name)]
        assert counts and all(text.replace(",", "").isdigit() for text in counts), counts
