"""The kitchen's queue as the database tells it: placed orders the kitchen is still working on."""

from __future__ import annotations

from datetime import datetime, timedelta

from db.backend import Repository
from db.clock import to_iso

# Placed orders whose preparation has begun (placed since ``since``) and is due before ``until``:
# an order for later, due after that, is not in the way yet. Until orders carry a "collected"
# status, an order counts as in the kitchen for one preparation time after it was placed.
QUEUE_SQL = (
    "SELECT count(*) FROM orders WHERE created_at >= ? AND status = 'placed' AND placed_at >= ?"
    " AND (ready_at IS NULL OR ready_at <= ?)"
)
# An order's row is created when its call begins: calls are never this long.
LONGEST_CALL = timedelta(hours=2)


async def kitchen_queue(repo: Repository, *, since: datetime, until: datetime) -> int:
    """How many placed orders are ahead in the kitchen: placed since ``since`` and due by ``until``."""
    rows = await repo.read(QUEUE_SQL, [to_iso(since - LONGEST_CALL), to_iso(since), to_iso(until)])
    return int(rows[0][0]) if rows else 0
