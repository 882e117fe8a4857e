"""The outbox: placed orders queued in the transaction that places them, delivered at least once to a
signed webhook and to Square (local fakes on loopback), retried with backoff, dead after too many failures."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import rows
from db import CallSnapshot, Order, OrderLine, open_repository
from db.open import open_outbox
from db.sqlite.outbox import SqliteOutbox
from memory_agent.outbox import (
    DeliveryWorker,
    RetryPolicy,
    SquareDestination,
    WebhookDestination,
    configured_destinations,
)
from memory_agent.settings import Settings
from outbox_fakes import SECRET, SQUARE_LOCATION, SQUARE_TOKEN, FakeSquare, WebhookReceiver, free_port, until
from test_cli import CLEAN_ENV, run
from test_dashboard import _datasette, chart_rows

FAST = RetryPolicy(attempts=6, backoff_s=0.05, max_backoff_s=0.2, lease_s=30)
LINES = [
    OrderLine(menu_item="margherita", name="Margherita", quantity=2, unit_price_cents=1250, modifications=["no basil"]),
    OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=800),
]


async def place_order(
    target: str | Path, call_id: str = "call-1", *, status: str = "placed", spool_dir: Path | None = None
) -> None:
    snap = CallSnapshot(
        call_id=call_id,
        identity="+15550001111",
        started_at="2026-03-01T18:00:00+00:00",
        caller_name="Maria Rossi",
        order=Order(
            status=status,  # type: ignore[arg-type]
            items=LINES,
            tip_cents=495,
            payment_method="card_on_pickup",
            kitchen_note="Allergies: peanuts",
        ),
    )
    async with open_repository(target, spool_dir=spool_dir) as repo:
        await repo.recovered()
        await repo.save_call(snap)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def square() -> AsyncIterator[FakeSquare]:
    server = FakeSquare()
    await server.start()
    yield server
    await server.stop()


async def deliveries(store: SqliteOutbox | object) -> list[tuple[str, str, int]]:
    found = await store.deliveries(("pending", "delivered", "dead"))  # type: ignore[attr-defined]
    return sorted((d.destination, d.status, d.attempts) for d in found)


async def test_a_placed_order_is_queued_in_the_transaction_that_places_it(db_path):
    await place_order(db_path, "call-open", status="in_progress")
    await place_order(db_path, "call-placed")

    [(call_id, key)] = rows(
        db_path, "SELECT o.call_id, x.idempotency_key FROM outbox AS x JOIN orders AS o ON o.id = x.order_id"
    )
    order_id = rows(db_path, "SELECT id FROM orders WHERE call_id = 'call-placed'")[0][0]
    assert (call_id, key) == ("call-placed", f"order-{order_id}-call-placed")


async def test_an_order_reaches_the_signed_webhook_and_square_once(db_path, receiver, square):
    await place_order(db_path)
    async with open_outbox(db_path) as store:
        worker = DeliveryWorker(
            store,
            {
                "webhook": WebhookDestination(receiver.endpoint, SECRET),
                "square": SquareDestination(SQUARE_TOKEN, SQUARE_LOCATION, base_url=square.url),
            },
            FAST,
        )
        await worker.run_once()
        await worker.idle()
        assert await deliveries(store) == [("square", "delivered", 1), ("webhook", "delivered", 1)]
        await worker.run_once()  # nothing is due any more: nothing is sent again
        await worker.idle()

    order_id = rows(db_path, "SELECT id FROM orders")[0][0]
    key = f"order-{order_id}-call-1"
    assert receiver.bad_signatures == 0 and receiver.requests == 1
    sent = receiver.orders[key]
    assert sent["type"] == "order.placed"
    assert sent["data"]["caller_first_name"] == "Maria"
    assert sent["data"]["total_cents"] == 2 * 1250 + 800 + 495
    assert [(i["name"], i["quantity"], i["modifications"]) for i in sent["data"]["items"]] == [
        ("Margherita", 2, ["no basil"]),
        ("Tiramisu", 1, []),
    ]
    assert "+15550001111" not in str(sent)  # the caller's number stays here

    assert len(square.requests) == 1
    [request] = square.requests
    assert request["idempotency_key"] == key
    created = request["order"]
    assert created["location_id"] == SQUARE_LOCATION and created["reference_id"] == str(order_id)
    assert [(i["name"], i["quantity"], i["base_price_money"]) for i in created["line_items"]] == [
        ("Margherita", "2", {"amount": 1250, "currency": "USD"}),
        ("Tiramisu", "1", {"amount": 800, "currency": "USD"}),
    ]
    assert created["line_items"][0]["note"] == "no basil"
    assert created["service_charges"][0]["amount_money"] == {"amount": 495, "currency": "USD"}
    assert created["metadata"] == {"payment_method": "card_on_pickup"}
    pickup = created["fulfillments"][0]["pickup_details"]
    assert pickup["recipient"]["display_name"] == "Maria" and pickup["note"] == "Allergies: peanuts"


async def test_a_receiver_down_then_up_gets_the_order_once_after_retries(db_path):
    port = free_port()
    await place_order(db_path)
    async with open_outbox(db_path) as store:
        worker = DeliveryWorker(store, {"webhook": WebhookDestination(f"http://127.0.0.1:{port}/orders", SECRET)}, FAST)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))

        async def failed_twice() -> bool:
            return any(d.attempts >= 2 for d in await store.deliveries(("pending",)))

        await until(failed_twice)  # nobody listens on the port: connection refused, retried
        receiver = WebhookReceiver(port)
        await receiver.start()
        try:

            async def delivered() -> bool:
                return [d.status for d in await store.deliveries(("pending", "delivered", "dead"))] == ["delivered"]

            await until(delivered)
            stop.set()
            await running
            [(destination, status, attempts)] = await deliveries(store)
        finally:
            await receiver.stop()
    assert (destination, status) == ("webhook", "delivered") and attempts >= 3
    assert len(receiver.orders) == 1 and receiver.requests == 1


async def test_a_refused_order_is_dead_at_once_and_too_many_failures_end_dead(db_path):
    await place_order(db_path)
    refusing, outage = WebhookReceiver(status=422), FakeSquare(status=503)
    await refusing.start()
    await outage.start()
    try:
        async with open_outbox(db_path) as store:
            policy = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, lease_s=30)
            worker = DeliveryWorker(
                store,
                {
                    "webhook": WebhookDestination(refusing.endpoint, SECRET),
                    "square": SquareDestination(SQUARE_TOKEN, SQUARE_LOCATION, base_url=outage.url),
                },
                policy,
            )
            await worker.run_once()
            await worker.idle()
            found = {d.destination: d for d in await store.deliveries(("dead",))}
    finally:
        await refusing.stop()
        await outage.stop()
    assert found["webhook"].attempts == 1 and found["webhook"].last_error == "webhook refused the order: HTTP 422"
    assert found["square"].attempts == 3 and found["square"].last_error == "Square answered HTTP 503"
    assert len(outage.requests) == 3 and len({r["idempotency_key"] for r in outage.requests}) == 1


async def test_outbox_command_lists_failed_deliveries_and_retries_one(db_path, tmp_path):
    await place_order(db_path)
    async with open_outbox(db_path) as store:
        worker = DeliveryWorker(
            store, {"webhook": WebhookDestination(f"http://127.0.0.1:{free_port()}/orders", SECRET)}, FAST
        )
        await worker.run_once()
        await worker.idle()
        [dead] = await store.deliveries(("dead",))

    listed = run("outbox", "--db", str(db_path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.split()[0] == str(dead.id))
    assert line.split()[1:5] == [str(dead.order_id), "webhook", "dead", str(FAST.attempts)]
    assert "webhook unreachable: ConnectError" in line

    retried = run("outbox", "retry", str(dead.id), "--db", str(db_path), cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert rows(db_path, "SELECT status, attempts FROM deliveries") == [("pending", 0)]

    missing = run("outbox", "retry", "999", "--db", str(db_path), cwd=tmp_path)
    assert (missing.returncode, missing.stderr.strip()) == (2, "memory-agent: error: no delivery 999")


def test_outbox_run_without_a_destination_or_with_a_bad_secret_is_one_line(db_path, tmp_path):
    asyncio.run(place_order(db_path))
    nothing = run("outbox", "run", "--db", str(db_path), cwd=tmp_path)
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1
    assert "no destination configured" in nothing.stderr
    env = {**CLEAN_ENV, "MEMORY_AGENT_WEBHOOK_URL": "http://127.0.0.1:9/orders", "MEMORY_AGENT_WEBHOOK_SECRET": "x"}
    bad = run("outbox", "run", "--db", str(db_path), cwd=tmp_path, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "MEMORY_AGENT_WEBHOOK_SECRET must be whsec_" in bad.stderr


def test_settings_configure_both_destinations(monkeypatch):
    monkeypatch.setenv("MEMORY_AGENT_WEBHOOK_URL", "https://till.example/orders")
    monkeypatch.setenv("MEMORY_AGENT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SQUARE_ACCESS_TOKEN", SQUARE_TOKEN)
    monkeypatch.setenv("SQUARE_LOCATION_ID", SQUARE_LOCATION)
    assert sorted(configured_destinations(Settings())) == ["square", "webhook"]


def _worker(db_path: Path, receiver: WebhookReceiver, tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        **CLEAN_ENV,
        "MEMORY_AGENT_WEBHOOK_URL": receiver.endpoint,
        "MEMORY_AGENT_WEBHOOK_SECRET": SECRET,
        "MEMORY_AGENT_OUTBOX_LEASE_S": "1",
        "MEMORY_AGENT_OUTBOX_BACKOFF_S": "0.05",
        "MEMORY_AGENT_OUTBOX_MAX_BACKOFF_S": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "memory_agent", "outbox", "run", "--db", str(db_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_worker_killed_mid_delivery_delivers_after_restart(db_path, tmp_path, receiver):
    await place_order(db_path)
    receiver.hold = asyncio.Event()  # the first request is held unanswered: the worker is mid-delivery
    first = _worker(db_path, receiver, tmp_path)
    try:
        await asyncio.wait_for(receiver.held.wait(), 60)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert rows(db_path, "SELECT status FROM deliveries") == [("pending",)]
    receiver.hold.set()  # the receiver answers from now on (the killed worker never reads it)

    second = _worker(db_path, receiver, tmp_path)
    try:

        async def delivered() -> bool:
            return rows(db_path, "SELECT status FROM deliveries") == [("delivered",)]

        await until(delivered)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, second.stderr.read() if second.stderr else ""
    # Delivered at least once; the receiver keeps it once, by its webhook-id.
    assert len(receiver.orders) == 1 and receiver.bad_signatures == 0


async def test_the_outbox_delivers_from_postgresql_too(pg_url, receiver, tmp_path):
    await place_order(pg_url, spool_dir=tmp_path)
    async with open_outbox(pg_url) as store:
        worker = DeliveryWorker(store, {"webhook": WebhookDestination(receiver.endpoint, SECRET)}, FAST)
        await worker.run_once()
        await worker.idle()
        assert await deliveries(store) == [("webhook", "delivered", 1)]
    [key] = receiver.orders
    assert key.endswith("-call-1") and receiver.orders[key]["data"]["caller_first_name"] == "Maria"


async def test_a_dead_delivery_shows_on_the_owners_dashboard(db_path):
    await place_order(db_path)
    refusing = WebhookReceiver(status=400)
    await refusing.start()
    try:
        async with open_outbox(db_path) as store:
            worker = DeliveryWorker(store, {"webhook": WebhookDestination(refusing.endpoint, SECRET)}, FAST)
            await worker.run_once()
            await worker.idle()
    finally:
        await refusing.stop()
    ds = await _datasette(db_path, timezone="America/New_York")
    order_id = rows(db_path, "SELECT id FROM orders")[0][0]

    [problem] = await chart_rows(ds, "till_problems", since="2000-01-01", until="9999-12-31")
    assert problem["order"] == order_id
    assert problem["delivery"] == "webhook: FAILED after 1 tries, webhook refused the order: HTTP 400"
    [latest] = await chart_rows(ds, "till_latest", since="2000-01-01", until="9999-12-31")
    assert latest["delivery"] == problem["delivery"]


async def test_the_livekit_workers_long_lived_process_delivers_orders(db_path, receiver, monkeypatch):
    from memory_agent.worker import build_server

    await place_order(db_path)
    monkeypatch.setenv("MEMORY_AGENT_DB", str(db_path))
    monkeypatch.setenv("MEMORY_AGENT_WEBHOOK_URL", receiver.endpoint)
    monkeypatch.setenv("MEMORY_AGENT_WEBHOOK_SECRET", SECRET)
    server = build_server(Settings())
    server.emit("worker_started")  # what LiveKit's AgentServer emits in its own process once it runs
    [delivering] = [task for task in asyncio.all_tasks() if task.get_name() == "outbox"]
    try:

        async def delivered() -> bool:
            return rows(db_path, "SELECT status FROM deliveries") == [("delivered",)]

        await until(delivered)
    finally:
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
    assert len(receiver.orders) == 1
