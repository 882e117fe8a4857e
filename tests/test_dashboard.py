"""The owner's dashboard and canned queries: local time, dollars, safe search, any form of a number."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from datasette.app import Datasette

from conftest import open_call
from db import CallSnapshot, Feedback, Order, OrderLine, Repository, kitchen
from db.schema.models import StaffMessage
from memory_agent.datasette import dashboard
from memory_agent.datasette.serve import register_plugin
from memory_agent.inspect import ROOT_ACTOR, load_metadata

PIZZA = OrderLine(menu_item="margherita_pizza", name="Margherita Pizza", quantity=2, unit_price_cents=1450)
TIRAMISU = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)
NEW_YORK = "America/New_York"
# (call, UTC time, identity, status, rating, comment)
ORDERS = [
    ("summer", "2026-07-04T02:30:00.000000+00:00", "+15551234567", "placed", 2, "the pizza arrived cold"),
    ("winter", "2026-01-15T03:10:00.000000+00:00", "+15551234567", "placed", 5, "perfect"),
    ("noon", "2026-07-04T16:00:00.000000+00:00", "+15557654321", "placed", 1, "<img src=x onerror=alert(1)> didn't"),
    ("gone", "2026-07-04T17:00:00.000000+00:00", "+15557654321", "abandoned", None, ""),
]


async def _place(repo: Repository, call_id: str, at: str, identity: str, status: str, rating, comment) -> None:
    await open_call(repo, call_id=call_id, identity=identity, started_at=at)
    await repo.save_call(
        CallSnapshot(
            call_id=call_id,
            identity=identity,
            caller_name="Maria" if identity.endswith("4567") else "Sam",
            order=Order(status=status, items=[PIZZA, TIRAMISU]),
            feedback=Feedback(rating=rating, comment=comment) if rating else None,
            ended_at=at,
            end_reason="participant_disconnected" if status == "abandoned" else "user_initiated",
            outcome="hung_up" if status == "abandoned" else "order_placed",
            restaurant_open=True,
        )
    )


# Two calls while closed: one left a message after a transfer that could not be made, one hung up.
LEFT_MESSAGE = CallSnapshot(
    call_id="help",
    identity="+15557654321",
    started_at="2026-07-05T07:00:00.000000+00:00",
    ended_at="2026-07-05T07:03:00.000000+00:00",
    end_reason="participant_disconnected",
    outcome="message_taken",
    restaurant_open=False,
    transfer_reason="complaint",
    transfer_status="unavailable",
    staff_messages=[
        StaffMessage(
            request="<b>Call me</b> about the cold pizza",
            callback_number="+15557654321",
            reason="complaint",
            created_at="2026-07-05T07:02:00.000000+00:00",
        )
    ],
)
HUNG_UP_CLOSED = CallSnapshot(
    call_id="late",
    started_at="2026-07-05T08:00:00.000000+00:00",
    ended_at="2026-07-05T08:01:00.000000+00:00",
    end_reason="participant_disconnected",
    outcome="hung_up",
    restaurant_open=False,
)


@pytest.fixture
async def seeded(repo, db_path) -> Path:
    for row in ORDERS:
        await _place(repo, *row)
    for outcome in ("wrong_name", "wrong_name", "refused"):
        await repo.record_identity_attempt("+15557654321", call_id="noon", outcome=outcome)
    for snap in (LEFT_MESSAGE, HUNG_UP_CLOSED):
        await repo.save_call(snap)
    conn = sqlite3.connect(db_path)
    with conn:  # date the orders and customers as the table says (they were written just now)
        for call_id, at, *_ in ORDERS:
            conn.execute("UPDATE orders SET created_at = ? WHERE call_id = ?", (at, call_id))
            conn.execute("UPDATE feedback SET created_at = ? WHERE call_id = ?", (at, call_id))
        conn.execute("UPDATE customers SET created_at = '2026-01-15T03:00:00.000000+00:00'")
        conn.execute("UPDATE identity_attempts SET attempted_at = '2026-07-04T16:00:00.000000+00:00'")
    first_order = conn.execute("SELECT min(id) FROM orders WHERE status = 'placed'").fetchone()[0]
    kitchen.move_ticket(conn, first_order, "preparing", "Marco", "2026-07-04T02:40:00.000000+00:00")
    kitchen.mark_sold_out(conn, "tiramisu", "2026-07-03", "Marco", "2026-07-04T02:45:00.000000+00:00")
    conn.close()
    return db_path


async def _datasette(db: Path, **options) -> Datasette:
    register_plugin()
    datasette = Datasette([str(db)], metadata=load_metadata(db.stem, **options))
    await datasette.invoke_startup()
    return datasette


@pytest.fixture
async def ds(seeded) -> Datasette:
    return await _datasette(seeded, timezone=NEW_YORK)


def cookies(ds: Datasette) -> dict[str, str]:
    return {"ds_actor": ds.sign({"a": ROOT_ACTOR}, "actor")}


async def chart_rows(ds: Datasette, slug: str, since: str = "2026-01-01", until: str = "2026-12-31") -> list[dict]:
    params = {"sql": dashboard.CHARTS[slug]["query"], "since": since, "until": until, "_shape": "objects"}
    response = await ds.client.get("/memory.json", params=params, cookies=cookies(ds))
    assert response.status_code == 200, response.text[:500]
    return response.json()["rows"]


async def canned(ds: Datasette, name: str, **params: str) -> list[dict]:
    response = await ds.client.get(f"/memory/{name}.json", params={**params, "_shape": "array"}, cookies=cookies(ds))
    assert response.status_code == 200, response.text[:500]
    return response.json()


@pytest.mark.parametrize("slug", list(dashboard.CHARTS))
async def test_every_chart_query_runs_and_returns_rows(ds, slug):
    assert await chart_rows(ds, slug)


async def test_dashboard_page_opens_on_the_last_90_days_with_every_chart(ds):
    first = await ds.client.get("/-/dashboards/owner", cookies=cookies(ds))
    assert first.status_code == 302 and "since=" in first.headers["location"]

    page = await ds.client.get(first.headers["location"], cookies=cookies(ds))
    assert page.status_code == 200
    for slug in dashboard.CHARTS:
        assert f'id="chart-{slug}"' in page.text, slug


async def test_names_tried_in_vain_are_shown_per_number_without_the_number(ds):
    [row] = await chart_rows(ds, "identity_attempts")

    assert (row["wrong names"], row["refused"], row["calls"]) == (2, 1, 1)
    assert row["last tried"].startswith("2026-07-04 12:00")
    assert "7654321" not in str(row) and len(row["number"]) == 10


async def test_days_and_hours_are_the_restaurants_local_days_and_hours(ds):
    per_day = await chart_rows(ds, "sales_per_day")
    by_hour = await chart_rows(ds, "orders_by_hour")

    # 02:30 UTC on July 4 is 22:30 on July 3 in New York (EDT); 03:10 UTC on January 15 is 22:10 EST.
    assert [(row["day"], row["orders"]) for row in per_day] == [("2026-01-14", 1), ("2026-07-03", 1), ("2026-07-04", 1)]
    assert {row["hour"]: row["orders"] for row in by_hour} == {22: 2, 12: 1}


async def test_a_date_range_is_whole_local_days(ds):
    [sales] = await chart_rows(ds, "sales", since="2026-07-03", until="2026-07-03")
    assert sales == {"sales": "$36.50"}
    assert await canned(ds, "top_items", since="2026-07-04", until="2026-07-04") != []
    [row] = await canned(ds, "daily_sales", since="2026-07-03", until="2026-07-03")
    assert (row["day"], row["orders"]) == ("2026-07-03", 1)


async def test_utc_is_the_default_time_zone(seeded):
    ds = await _datasette(seeded)
    assert [row["day"] for row in await chart_rows(ds, "sales_per_day")] == ["2026-01-15", "2026-07-04"]


async def test_an_impossible_or_empty_range_gives_no_rows_and_no_error(ds):
    assert await chart_rows(ds, "sales_per_day", since="2026-08-01", until="2026-07-01") == []
    assert await chart_rows(ds, "sales_per_day", since="", until="") != []  # an empty date is no limit


async def test_money_reads_in_dollars_in_charts_tables_and_queries(ds):
    [average] = await chart_rows(ds, "average_order")
    assert average == {"average": "$36.50"}
    html = (await ds.client.get("/memory/orders", cookies=cookies(ds))).text
    assert "$36.50" in html and "kcent" not in html and " cent<" not in html
    items = (await ds.client.get("/memory/top_items?since=&until=", cookies=cookies(ds))).text
    assert "$87.00" in items  # six pizzas at $14.50, in three placed orders


async def test_the_low_ratings_table_shows_a_callers_words_as_text(ds):
    rows = await chart_rows(ds, "low_ratings")
    assert [row["rating"] for row in rows] == [1, 2]  # newest first
    assert rows[0]["comment"] == "&lt;img src=x onerror=alert(1)&gt; didn't"
    assert rows[0]["order"] == "$36.50" and rows[0]["when"] == "2026-07-04 12:00"


@pytest.mark.parametrize(
    "q", ["didn't", '"cold', "-cold", "cold OR", "AND", "NEAR(", "*", "", "'", "pizza -arrived", "col:umn", "ça"]
)
async def test_search_never_errors(ds, q):
    await canned(ds, "search_conversations", q=q)


@pytest.mark.parametrize("q", ["didn't", "DIDN'T onerror", "-cold", '"arrived cold"'])
async def test_search_finds_words_as_typed(ds, q):
    assert await canned(ds, "search_conversations", q=q)


@pytest.mark.parametrize(
    "identity", ["+15551234567", "555-123-4567", "(555) 123-4567", "tel:+15551234567", "sip:+15551234567@pbx.example"]
)
async def test_a_caller_is_found_by_any_form_of_their_number(ds, identity):
    rows = await canned(ds, "caller", identity=identity)
    assert {row["kind"] for row in rows} >= {"customer", "order", "feedback"}


async def test_nothing_is_shown_without_logging_in(ds):
    for path in ("/", "/memory", "/memory/customers.json", "/memory/caller.json?identity=%2B15551234567",
                 "/-/dashboards/owner?since=2026-01-01&until=2026-12-31"):  # fmt: skip
        response = await ds.client.get(path)
        assert response.status_code == 403, path
        assert "Maria" not in response.text and "15551234567" not in response.text


async def test_arbitrary_sql_is_refused_but_the_dashboards_runs(ds):
    refused = await ds.client.get(
        "/memory.json", params={"sql": "select name, email from customers"}, cookies=cookies(ds)
    )
    where = await ds.client.get("/memory/customers.json", params={"_where": "1=1"}, cookies=cookies(ds))

    assert refused.status_code == 403 and "Maria" not in refused.text
    assert where.status_code == 403
    assert await chart_rows(ds, "sales")


async def test_allow_sql_opens_arbitrary_sql(seeded):
    ds = await _datasette(seeded, allow_sql=True)
    response = await ds.client.get(
        "/memory.json", params={"sql": "select count(*) AS n from customers", "_shape": "array"}, cookies=cookies(ds)
    )
    assert response.json() == [{"n": 2}]


async def test_another_host_name_is_refused(seeded):
    ds = await _datasette(seeded, hosts=("127.0.0.1:8001", "localhost:8001"))
    refused = await ds.client.get("/memory/customers.json", headers={"host": "evil.example:8001"}, cookies=cookies(ds))
    served = await ds.client.get("/memory/customers.json", headers={"host": "127.0.0.1:8001"}, cookies=cookies(ds))

    assert refused.status_code == 421 and "Maria" not in refused.text
    assert served.status_code == 200


async def test_a_number_finds_every_person_on_it(repo, seeded):
    await _place(repo, "tom", "2026-07-05T18:00:00.000000+00:00", "+15551234567#2", "placed", 4, "nice")
    ds = await _datasette(seeded)

    rows = await canned(ds, "caller", identity="555-123-4567")
    second = await canned(ds, "caller", identity="+15551234567#2")

    customers = [row["detail"] for row in rows if row["kind"] == "customer"]
    assert len(customers) == 2 and any("+15551234567#2" in detail for detail in customers)
    assert [row["detail"] for row in second if row["kind"] == "customer"] == [d for d in customers if "#2" in d]


async def test_how_calls_ended_missed_revenue_and_transfers_read_in_words(ds):
    outcomes = {row["outcome"]: row["calls"] for row in await chart_rows(ds, "outcomes")}
    assert outcomes == {"Order placed": 3, "Caller hung up": 2, "Message taken": 1}
    # Two calls while closed ended without an order, at the range's average order of $36.50.
    assert await chart_rows(ds, "missed_revenue") == [{"missed": "$73.00 (2 calls)"}]
    [transfers] = await chart_rows(ds, "transfers")
    assert transfers == {
        "reason": "A complaint",
        "asked": 1,
        "put through": 0,
        "failed": 0,
        "nobody to take it": 1,
        "share": "16.7%",
    }
    [message] = await chart_rows(ds, "staff_messages")
    assert message["message"] == "&lt;b&gt;Call me&lt;/b&gt; about the cold pizza"
    assert message["when"].startswith("2026-07-05 03:02")  # New York time
    assert message["call back on"] == "+15557654321"


async def test_a_call_that_ended_in_an_erasure_still_counts_among_how_calls_ended(repo, seeded):
    await repo.forget("+15557654321", exact=True, online=True)  # asked for on a call (the journal's own way)
    await repo.forget("+15551234567")  # the owner's, with `memory-agent forget`: not a way a call ended
    conn = sqlite3.connect(seeded)
    with conn:
        conn.execute("UPDATE erasures SET erased_at = '2026-07-05T07:03:00.000000+00:00'")
    conn.close()
    ds = await _datasette(seeded, timezone=NEW_YORK)

    outcomes = {row["outcome"]: row["calls"] for row in await chart_rows(ds, "outcomes")}

    # The message-taking caller's call is gone with them; the erasure stands in its place, once.
    assert outcomes["Erased at their request"] == 1 and "Message taken" not in outcomes
    assert await chart_rows(ds, "outcomes", since="2026-07-06") == []
