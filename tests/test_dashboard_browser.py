"""The owner's dashboard in a real browser: headless Chromium, logged in with the printed link."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import open_call
from db import CallSnapshot, Feedback, Order, OrderLine, Repository, kitchen
from db.clock import to_iso
from db.schema.models import StaffMessage
from inspect_server import serve
from memory_agent.datasette import dashboard

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("headless_chromium", ROOT / "scripts" / "headless_chromium.py")
assert _spec is not None and _spec.loader is not None
headless_chromium = importlib.util.module_from_spec(_spec)
sys.modules["headless_chromium"] = headless_chromium  # dataclasses look their module up
_spec.loader.exec_module(headless_chromium)

if headless_chromium.chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Chromium for the dashboard's browser test (.ci/run installs it)")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

PIZZA = OrderLine(menu_item="margherita_pizza", name="Margherita Pizza", quantity=2, unit_price_cents=1450)
TIRAMISU = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)
GRAPHIC = {slug for slug, chart in dashboard.CHARTS.items() if chart["library"] in ("vega", "vega-lite")}

# What each chart shows once it has rendered: a graphic (SVG or canvas), a figure, a table.
RENDERED = f"""(() => {{
  const found = {{}};
  for (const slug of {json.dumps(list(dashboard.CHARTS))}) {{
    const el = document.querySelector('#chart-' + slug);
    found[slug] = !el ? 'missing' : el.querySelector('svg, canvas') ? 'graphic'
      : el.querySelector('table td') ? 'table' : el.querySelector('p') ? 'metric' : '';
  }}
  return Object.values(found).every(Boolean) ? found : null;
}})()"""


async def _place(repo: Repository, n: int, at: datetime, *, status: str, rating: int | None, comment: str) -> None:
    when = to_iso(at)
    identity = f"+1555000{n % 3:04d}"
    await open_call(repo, call_id=f"call-{n}", identity=identity, started_at=when)
    await repo.save_call(
        CallSnapshot(
            call_id=f"call-{n}",
            identity=identity,
            caller_name="Maria",
            order=Order(status=status, items=[PIZZA, TIRAMISU]),
            feedback=Feedback(rating=rating, comment=comment) if rating else None,
            ended_at=when,
            end_reason="participant_disconnected" if status == "abandoned" else "user_initiated",
        )
    )


@pytest.fixture
async def seeded(repo, db_path) -> Path:
    now = datetime.now(UTC)
    for n in range(12):
        status = "abandoned" if n % 5 == 4 else "placed"
        rating = 2 if n == 0 else 4 + n % 2
        await _place(repo, n, now - timedelta(days=n * 3, hours=n), status=status, rating=rating, comment="cold pizza")
    for outcome in ("wrong_name", "wrong_name", "refused"):
        await repo.record_identity_attempt("+15550000001", call_id="call-1", outcome=outcome)
    # A call while closed that left a message for the staff: the transfers and messages tables have a row.
    at = to_iso(now - timedelta(days=1))
    message = StaffMessage(request="Please call back", callback_number="+15550000001", reason="other", created_at=at)
    await repo.save_call(
        CallSnapshot(
            call_id="message",
            started_at=at,
            ended_at=at,
            end_reason="participant_disconnected",
            outcome="message_taken",
            restaurant_open=False,
            transfer_reason="other",
            transfer_status="unavailable",
            staff_messages=[message],
        )
    )
    with contextlib.closing(sqlite3.connect(db_path)) as conn:  # the kitchen board moved a ticket
        first = conn.execute("SELECT min(id) FROM orders WHERE status = 'placed'").fetchone()[0]
        kitchen.move_ticket(conn, first, "preparing", "Marco", at)
    return db_path


async def test_every_chart_renders_and_money_reads_in_dollars(seeded, tmp_path):
    with serve(seeded, tmp_path) as served:
        async with headless_chromium.browser() as page:
            await page.goto(served.login)
            await page.goto(f"{served.base}/-/dashboards/{dashboard.SLUG}")
            rendered = await page.wait_for(RENDERED, within_s=60)
            cells = await page.evaluate("[...document.querySelectorAll('#chart-low_ratings td')].map(c => c.innerText)")
            text = await page.evaluate("document.body.innerText")
            exceptions = list(page.exceptions)

    assert rendered is not None, "not every chart rendered"
    assert {slug for slug, kind in rendered.items() if kind == "graphic"} == GRAPHIC
    assert all(kind != "missing" for kind in rendered.values())
    assert "$36.50" in cells
    assert exceptions == []
    assert "Error" not in text and "error" not in text.lower().replace("errors", "")


async def test_the_dashboard_without_logging_in_shows_the_login_help_and_no_data(seeded, tmp_path):
    with serve(seeded, tmp_path) as served:
        async with headless_chromium.browser() as page:
            await page.goto(f"{served.base}/-/dashboards/{dashboard.SLUG}")
            text = await page.evaluate("document.body.innerText")

    assert "Log in first" in text and "Maria" not in text and "$" not in text
