"""The agents' way to the repository: the caller lookup within a budget, and write-through of
the call's state as it changes. A slow or failing database never interrupts the caller: whatever
a write here misses, the end-of-call finalize writes (or spools) from the same state.
"""

from __future__ import annotations

import asyncio
import logging

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
    try:
        await ud.repo.save_order(call_id=ud.call_id, customer_id=ud.customer_id, order=ud.order.to_record(final=False))
    except RepositoryError as exc:
        log.warning("order write-through failed for call %s: %s", ud.call_id, exc)


async def save_name(ud: Userdata) -> None:
    if not ud.caller_name:
        return
    try:
        await ud.repo.save_caller_name(call_id=ud.call_id, customer_id=ud.customer_id, name=ud.caller_name)
    except RepositoryError as exc:
        log.warning("name write-through failed for call %s: %s", ud.call_id, exc)


async def save_feedback(ud: Userdata) -> None:
    try:
        if (feedback := ud.order.feedback_record()) is not None:
            await ud.repo.save_feedback(call_id=ud.call_id, customer_id=ud.customer_id, feedback=feedback)
        if ud.order.email:
            await ud.repo.save_email(customer_id=ud.customer_id, email=ud.order.email)
    except RepositoryError as exc:
        log.warning("feedback write-through failed for call %s: %s", ud.call_id, exc)
