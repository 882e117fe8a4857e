"""The agents' way to the repository: the caller lookup within a budget, and write-through of
the call's state as it changes. A slow or failing database never interrupts the caller: whatever
a write here misses, the end-of-call finalize writes (or spools) from the same state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from db import CustomerMemory, RepositoryError
from memory_agent.identity import redact
from memory_agent.state import Userdata

log = logging.getLogger("memory_agent")


async def recall(ud: Userdata, *, budget_s: float | None) -> CustomerMemory | None:
    """The caller's memory, or None when the lookup fails or overruns its budget (None: no limit)."""
    assert ud.identity is not None
    try:
        return await asyncio.wait_for(ud.repo.recall(ud.identity), timeout=budget_s)
    except TimeoutError:
        log.warning(
            "caller lookup for %s took over %.0f ms; going on without memory",
            redact(ud.identity),
            (budget_s or 0) * 1000,
        )
    except RepositoryError as exc:
        log.warning("caller lookup for %s failed (%s); going on without memory", redact(ud.identity), exc)
    return None


async def save_order(ud: Userdata) -> None:
    order = ud.order.to_record(final=False)
    await _write(ud, "order", lambda: ud.repo.save_order(call_id=ud.call_id, customer_id=ud.customer_id, order=order))


async def save_name(ud: Userdata) -> None:
    if name := ud.caller_name:
        await _write(
            ud, "name", lambda: ud.repo.save_caller_name(call_id=ud.call_id, customer_id=ud.customer_id, name=name)
        )


async def save_feedback(ud: Userdata) -> None:
    if (feedback := ud.order.feedback_record()) is not None:
        await _write(
            ud,
            "feedback",
            lambda: ud.repo.save_feedback(call_id=ud.call_id, customer_id=ud.customer_id, feedback=feedback),
        )
    if email := ud.order.email:
        await _write(ud, "email", lambda: ud.repo.save_email(customer_id=ud.customer_id, email=email))


async def _write(ud: Userdata, what: str, write: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Write through within the budget; a slow write goes on in the background, and while it does
    later write-throughs are skipped (the end-of-call finalize writes the latest state anyway), so
    a busy database never makes the caller wait and never piles up writes that would delay it.
    """
    if ud.slow_write is not None and not ud.slow_write.done():
        log.debug("%s write-through for call %s skipped: the database is still busy", what, ud.call_id)
        return
    task = asyncio.ensure_future(write())
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=ud.recall_budget_s)
    except TimeoutError:
        log.warning("%s write-through for call %s is slow; the call goes on", what, ud.call_id)
        ud.slow_write = task
        in_background(task, f"{what} write-through for call {ud.call_id}")
    except RepositoryError as exc:
        log.warning("%s write-through failed for call %s: %s", what, ud.call_id, exc)


_BACKGROUND: set[asyncio.Future[Any]] = set()


def in_background(task: asyncio.Future[Any], what: str) -> None:
    """Keep a task alive until it ends, and log it if it fails (nothing else awaits it)."""
    _BACKGROUND.add(task)

    def done(task: asyncio.Future[Any]) -> None:
        _BACKGROUND.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s failed: %s", what, exc)

    task.add_done_callback(done)
