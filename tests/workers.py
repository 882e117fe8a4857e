"""What the child processes of the crash and concurrency tests run: real calls, as a worker would."""

from __future__ import annotations

import asyncio
import logging
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event

from db import CallSnapshot, Order, OrderLine, Repository, open_repository
from db.clock import utcnow_iso
from memory_agent import Call, start_call
from memory_agent.call import CallConfig
from memory_agent.identity import Caller
from memory_agent.journal import Journal
from memory_agent.scripted_llm import Say, ScriptedLLM, Step, ToolCall

ORDER_STEPS = [
    Say("Welcome to Bella Vista! What can I get you?"),
    ToolCall("transfer_to_order_taker"),
    Say("What would you like?"),
    (ToolCall("add_to_order", {"item": "margherita", "quantity": 2}), ToolCall("add_to_order", {"item": "tiramisu"})),
    Say("Two Margherita Pizzas and a Tiramisu. Anything else?"),
]
ORDER_LINES = ["I'd like to order", "Two margheritas and a tiramisu"]
PLACE_STEPS = [ToolCall("confirm_order"), Say("Placed!")]


async def _call_until(
    repo: Repository, identity: str, call_id: str, steps: list[Step], lines: list[str], *, trust_caller_id: bool = False
) -> Call:
    """A call whose ``lines`` are completed turns, each journaled."""
    llm = ScriptedLLM(steps)
    call = await start_call(
        repo, Caller.typed(identity), CallConfig(trust_caller_id=trust_caller_id), llm=llm, call_id=call_id
    )
    assert call.greeting is not None
    await call.greeting
    for line in lines:
        await call.session.run(user_input=line)
    await call.journal.flush()
    return call


def call_then_wait_to_be_killed(db_path: str, call_id: str, ready: Event) -> None:
    """Take an order up to the point of placing it, say so, then hang as a call in progress would."""

    async def run() -> None:
        async with open_repository(db_path) as repo:
            await _call_until(repo, "killed-caller", call_id, ORDER_STEPS, ORDER_LINES)
            ready.set()
            await asyncio.sleep(3600)

    asyncio.run(run())


def finish_calls(db_path: str, worker: int, calls: int, identities: list[str], start: Barrier, results: Queue) -> None:
    """Run ``calls`` complete calls that place an order, all released at once with the other workers.

    Reports how long each ``finish()`` took and every error the product logged. Warnings are
    not problems: on a loaded machine a write may outlast the budget and be spooled, by design.
    """
    problems: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: problems.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("memory_agent").addHandler(handler)

    async def run() -> list[float]:
        waits = []
        async with open_repository(db_path) as repo:
            start.wait()
            for n in range(calls):
                identity = identities[(worker + n) % len(identities)]
                llm = ScriptedLLM([*ORDER_STEPS, *PLACE_STEPS])
                call = await start_call(
                    repo, Caller.typed(identity), CallConfig(trust_caller_id=True), llm=llm, call_id=f"w{worker}-c{n}"
                )
                assert call.greeting is not None
                await call.greeting
                for line in [*ORDER_LINES, "Yes, place it"]:
                    await call.session.run(user_input=line)
                began = time.perf_counter()
                await call.finish()
                waits.append(time.perf_counter() - began)
        return waits

    try:
        results.put((worker, asyncio.run(run()), problems))
    except BaseException as exc:
        results.put((worker, [], [*problems, f"raised {exc!r}"]))


def place_while_locked_then_wait_to_be_killed(
    target: str, spool_dir: str, call_id: str, ordered: Event, locked: Event, placed: Queue
) -> None:
    """Take an order, wait for the database to refuse writes (another connection holds SQLite's write lock,
    PostgreSQL refuses connections), place it, report what the caller heard: the tools' errors, and the
    agent the call went on to (Feedback: the order is placed)."""

    async def run() -> None:
        async with open_repository(target, spool_dir=spool_dir) as repo:
            call = await _call_until(repo, "+15550009999", call_id, [*ORDER_STEPS, *PLACE_STEPS], ORDER_LINES)
            ordered.set()
            await asyncio.to_thread(locked.wait)
            result = await call.session.run(user_input="Yes, place it")
            errors = [e.item.output for e in result.events if e.type == "function_call_output" and e.item.is_error]
            placed.put((errors, type(call.session.current_agent).__name__))
            await asyncio.sleep(3600)

    asyncio.run(run())


def talk_then_wait_to_be_killed(target: str, spool_dir: str, call_id: str, lines: list[str], ready: Event) -> None:
    """Hold a conversation of ``lines`` (each a completed turn), then hang as a call in progress would."""

    async def run() -> None:
        async with open_repository(target, spool_dir=spool_dir) as repo:
            steps: list[Step] = [Say("Welcome to Bella Vista!"), *(Say(f"Noted: {line}") for line in lines)]
            await _call_until(repo, "+15550008888", call_id, steps, lines)
            ready.set()
            await asyncio.sleep(3600)

    asyncio.run(run())


def talk_through_an_erasure(
    target: str,
    spool_dir: str,
    caller: str,
    steps: list[Step],
    before: list[str],
    after: list[str],
    ready: Event,
    go_on: Event,
    report: Queue,
) -> None:
    """A vouched-for caller's call (SQLite file or PostgreSQL URL): say ``before`` (each a completed turn),
    say so, wait for ``go_on`` (the caller is erased meanwhile, by another process), say ``after``, end
    the call; report the tools' errors and whether the call knew it was erased."""

    async def run() -> None:
        async with open_repository(target, spool_dir=spool_dir) as repo:
            await repo.recovered()
            call = await _call_until(repo, caller, "erased-call", steps, before, trust_caller_id=True)
            ready.set()
            await asyncio.to_thread(go_on.wait)
            errors = []
            for line in after:
                result = await call.session.run(user_input=line)
                errors += [e.item.output for e in result.events if e.type == "function_call_output" and e.item.is_error]
            await call.finish()
            report.put((errors, call.journal.erased))

    asyncio.run(run())


def talk_while_locked_then_wait_to_be_killed(db_path: str, call_id: str, lines: list[str], ready: Event) -> None:
    """Hold a conversation of ``lines`` while another connection holds the write lock; once every completed
    turn is in the database or the spool, say so and hang as a call in progress would."""

    async def run() -> None:
        async with open_repository(db_path) as repo:
            steps: list[Step] = [Say("Welcome to Bella Vista!"), *(Say(f"Noted: {line}") for line in lines)]
            call = await start_call(repo, Caller.typed("+15550007777"), llm=ScriptedLLM(steps), call_id=call_id)
            assert call.greeting is not None
            await call.greeting
            for line in lines:
                await call.session.run(user_input=line)
            await call.journal.saved()
            ready.set()
            await asyncio.sleep(3600)

    asyncio.run(run())


def place_orders_while_locked(db_path: str, worker: int, orders: int, released: Event, results: Queue) -> None:
    """Place ``orders`` orders at once while the database is locked (each one spooled, as the caller waits
    no longer than the budget); report it; once the lock is released, report when all are in the database."""

    async def run() -> None:
        async with open_repository(db_path) as repo:
            spooled = await place_orders(repo, [f"w{worker}-o{n}" for n in range(orders)])
            results.put(("placed", worker, spooled))
            await asyncio.to_thread(released.wait)
            await orders_written(repo, worker, orders)
            results.put(("written", worker, orders))

    try:
        asyncio.run(run())
    except BaseException as exc:
        results.put(("raised", worker, repr(exc)))


async def place_orders(repo: Repository, call_ids: list[str]) -> int:
    """Place one order per call id, all at once, through each call's journal; how many went to the spool."""
    journals = []
    for call_id in call_ids:
        journal = Journal(repo, call_id=call_id, caller=None, budget_s=0.3)
        journal.attach(lambda end_reason, call_id=call_id: placed_order(call_id))
        journals.append(journal)
    written = await asyncio.gather(*(journal.commit() for journal in journals))
    return written.count(False)


def placed_order(call_id: str) -> CallSnapshot:
    return CallSnapshot(
        call_id=call_id,
        started_at=utcnow_iso(),
        order=Order(
            status="placed",
            items=[OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)],
        ),
    )


async def orders_written(repo: Repository, worker: int, orders: int) -> None:
    """Return once this worker's orders are all in the database (the spool's drainer writes them)."""
    while True:
        found = await repo.read("SELECT count(*) FROM orders WHERE call_id LIKE ?", (f"w{worker}-o%",))
        if found[0][0] == orders:
            return
        await asyncio.sleep(0.1)


def spin(stop: Event) -> None:
    """Keep a core busy until ``stop``."""
    while not stop.is_set():
        for _ in range(100_000):
            pass
