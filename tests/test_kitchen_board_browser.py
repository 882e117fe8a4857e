"""The kitchen board in headless Chromium, served by `memory-agent inspect`, while scripted calls run."""

from __future__ import annotations

from conftest import rows, scripted_call
from db import CallSnapshot, Order, OrderLine
from db.clock import utcnow_iso
from inspect_server import serve
from memory_agent.scripted_llm import Say, ToolCall
from test_dashboard_browser import headless_chromium
from test_order_tools import TO_ORDER_TAKER, tool_outputs

TICKETS = "[...document.querySelectorAll('[data-ticket]')].map(t => [t.dataset.ticket, t.dataset.status])"
# Generous: the board polls every second; a busy machine may be slow to run the page.
WITHIN_S = 30


async def test_an_order_appears_without_reload_and_its_status_moves_persist(repo, db_path, tmp_path):
    with serve(db_path, tmp_path) as served:
        async with headless_chromium.browser() as page:
            await page.goto(served.login)
            await page.goto(f"{served.base}/-/kitchen")
            assert await page.wait_for("document.getElementById('updated').textContent", within_s=WITHIN_S)
            assert await page.evaluate(TICKETS) == []

            steps = [
                *TO_ORDER_TAKER,
                ToolCall("add_to_order", {"item": "margherita_pizza", "modifications": ["well done"]}),
                Say("One Margherita, well done."),
                ToolCall("confirm_order"),
                Say("Placed."),
            ]
            await scripted_call(repo, "+15550004444", steps, ["hi", "a margherita well done", "yes"])
            order_id = rows(db_path, "SELECT id FROM orders WHERE status = 'placed'")[0][0]

            # The page was not reloaded: the ticket arrives by the board's own polling.
            assert await page.wait_for(TICKETS + ".length", within_s=WITHIN_S) == 1
            card = f"document.querySelector('[data-ticket=\"{order_id}\"]')"
            assert "Margherita" in await page.evaluate(f"{card}.innerText")
            assert "well done" in await page.evaluate(f"{card}.innerText")

            for status in ("preparing", "ready"):
                await page.evaluate("document.getElementById('by').value = 'Marco'")
                await page.evaluate(f"{card}.querySelector('button[data-move]').click()")
                assert await page.wait_for(f"{card}.dataset.status === '{status}'", within_s=WITHIN_S)

            await page.goto(f"{served.base}/-/kitchen")  # a reload reads the same from the database
            assert await page.wait_for(TICKETS + ".length", within_s=WITHIN_S)
            assert await page.evaluate(TICKETS) == [[str(order_id), "ready"]]
            exceptions = list(page.exceptions)

    assert rows(db_path, "SELECT status, changed_by FROM ticket_changes ORDER BY id") == [
        ("preparing", "Marco (root)"),
        ("ready", "Marco (root)"),
    ]
    assert exceptions == []


async def test_the_allergy_note_stands_out_on_its_ticket(repo, db_path, tmp_path):
    line = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)
    await repo.save_call(
        CallSnapshot(
            call_id="c1",
            identity="+15550005555",
            started_at=utcnow_iso(),
            caller_name="Ana Lima",
            order=Order(status="placed", items=[line], kitchen_note="ALLERGY: tree nuts"),
        )
    )
    with serve(db_path, tmp_path) as served:
        async with headless_chromium.browser() as page:
            await page.goto(served.login)
            await page.goto(f"{served.base}/-/kitchen")
            assert await page.wait_for("!!document.querySelector('.allergy[role=alert]')", within_s=WITHIN_S)
            note = await page.evaluate("document.querySelector('.allergy').innerText")
            colour = await page.evaluate("getComputedStyle(document.querySelector('.allergy')).backgroundColor")
            text = await page.evaluate("document.querySelector('[data-ticket]').innerText")

    assert "TREE NUTS" in note and colour == "rgb(204, 0, 0)"
    assert "Ana" in text and "Lima" not in text and "+1555" not in text


async def test_a_dish_86d_on_the_board_is_refused_by_a_call_in_progress(repo, db_path, tmp_path):
    steps = [
        *TO_ORDER_TAKER,
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("Sorry, the tiramisu is sold out today."),
    ]
    call, llm = await scripted_call(repo, "+15550006666", steps, ["hi"], finish=False)
    try:
        with serve(db_path, tmp_path) as served:
            async with headless_chromium.browser() as page:
                await page.goto(served.login)
                await page.goto(f"{served.base}/-/kitchen")
                button = "document.querySelector('[data-sold-out=\"tiramisu\"]')"
                assert await page.wait_for(f"!!{button}", within_s=WITHIN_S)
                await page.evaluate(f"window.confirm = () => true; {button}.click()")
                assert await page.wait_for(f"{button}.disabled", within_s=WITHIN_S)

        await call.session.run(user_input="and a tiramisu please")
    finally:
        await call.finish()

    assert any("Tiramisu is sold out for today" in output for output in tool_outputs(llm))
    assert rows(db_path, "SELECT menu_item, marked_by FROM sold_out") == [("tiramisu", "root")]
    assert rows(db_path, "SELECT count(*) FROM order_items") == [(0,)]
