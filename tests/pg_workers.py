"""What the child processes of the PostgreSQL host tests run: real calls, as a worker on some host would."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event

from workers import ORDER_LINES, ORDER_STEPS, PLACE_STEPS

from db import open_repository
from memory_agent import start_call
from memory_agent.call import CallConfig
from memory_agent.identity import Caller
from memory_agent.scripted_llm import ScriptedLLM


def finish_calls_as_host(
    url: str, host: str, worker: int, calls: int, identities: list[str], spool_dir: str, start: Barrier, results: Queue
) -> None:
    """Run ``calls`` complete calls that place an order as a process of ``host``; report every error logged."""
    problems: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: problems.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("memory_agent").addHandler(handler)

    async def run() -> int:
        done = 0
        async with open_repository(url, spool_dir=spool_dir, host_id=host) as repo:
            await repo.recovered()
            start.wait()
            for n in range(calls):
                identity = identities[(worker + n) % len(identities)]
                llm = ScriptedLLM([*ORDER_STEPS, *PLACE_STEPS])
                call = await start_call(
                    repo,
                    Caller.typed(identity),
                    CallConfig(trust_caller_id=True),
                    llm=llm,
                    call_id=f"{host}-w{worker}-c{n}",
                )
                assert call.greeting is not None
                await call.greeting
                for line in [*ORDER_LINES, "Yes, place it"]:
                    await call.session.run(user_input=line)
                await call.finish()
                done += 1
        return done

    try:
        results.put((worker, asyncio.run(run()), problems))
    except BaseException as exc:
        results.put((worker, 0, [*problems, f"raised {exc!r}"]))


def take_an_order_then_hang(url: str, host: str, call_id: str, spool_dir: str, lease_s: float, ready: Event) -> None:
    """As ``host``: take an order up to placing it, say so, then hang as a call in progress would."""

    async def run() -> None:
        async with open_repository(url, spool_dir=spool_dir, host_id=host, lease=timedelta(seconds=lease_s)) as repo:
            await repo.recovered()
            call = await start_call(
                repo,
                Caller.typed("+15550007777"),
                CallConfig(trust_caller_id=True),
                llm=ScriptedLLM(ORDER_STEPS),
                call_id=call_id,
            )
            assert call.greeting is not None
            await call.greeting
            for line in ORDER_LINES:
                await call.session.run(user_input=line)
            await call.journal.flush()
            ready.set()
            await asyncio.sleep(3600)

    asyncio.run(run())
