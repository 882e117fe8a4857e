"""The kitchen's queue as the database tells it: placed orders the kitchen is still working on."""

from __future__ import annotations

from datetime import datetime

from db.backend import Repository
from db.clock import to_iso

# Placed orders not ready yet (their ready time is after ``now``) and due by ``until``: an order
# for later, due after that, is not in the kitchen's way yet. Until orders carry a "collected"
# status, an order leaves the queue at the ready time the caller was told.
QUEUE_SQL = "SELECT count(*) FROM orders WHERE ready_at > ? AND ready_at <= ? AND status = 'placed'"


async def kitchen_queue(repo: Repository, *, now: datetime, until: datetime) -> int:
    """How many placed orders are ahead in the kitchen at ``now``: not ready yet, and due by ``until``."""
    rows = await repo.read(QUEUE_SQL, [to_iso(now), to_iso(until)])
    return int(rows[0][0]) if rows else 0
