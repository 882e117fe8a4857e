"""What the child processes of the crash and concurrency tests run: real calls, as a worker would."""

from __future__ import annotations

import asyncio
import logging
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event

from db import Repository, open_repository
from memory_agent import Call, start_call
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
    call = await start_call(identity=identity, repo=repo, llm=llm, call_id=call_id, trust_caller_id=trust_caller_id)
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
                    identity=identity, repo=repo, llm=llm, call_id=f"w{worker}-c{n}", trust_caller_id=True
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
    db_path: str, call_id: str, ordered: Event, locked: Event, placed: Queue
) -> None:
    """Take an order, wait for another connection to hold the write lock, place it, report what the caller
    heard: the tools' errors, and the agent the call went on to (Feedback: the order is placed)."""

    async def run() -> None:
        async with open_repository(db_path) as repo:
            call = await _call_until(repo, "+15550009999", call_id, [*ORDER_STEPS, *PLACE_STEPS], ORDER_LINES)
            ordered.set()
            await asyncio.to_thread(locked.wait)
            result = await call.session.run(user_input="Yes, place it")
            errors = [e.item.output for e in result.events if e.type == "function_call_output" and e.item.is_error]
            placed.put((errors, type(call.session.current_agent).__name__))
            await asyncio.sleep(3600)

    asyncio.run(run())


def talk_then_wait_to_be_killed(db_path: str, call_id: str, lines: list[str], ready: Event) -> None:
    """Hold a conversation of ``lines`` (each a completed turn), then hang as a call in progress would."""

    async def run() -> None:
        async with open_repository(db_path) as repo:
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
