"""The kitchen's queue as the database tells it: placed orders the kitchen still has to make."""

from __future__ import annotations

from datetime import datetime, timedelta

from db.backend import Repository
from db.clock import to_iso

# A ticket the kitchen forgot to move on from an earlier service never holds up this one.
STALE_AFTER = timedelta(hours=12)

# Placed orders due by ``until`` (an order for later, due after that, is not in the kitchen's way yet)
# that the kitchen still has to make: not marked ready or collected on the kitchen board. An order
# the board never moved leaves the queue at the ready time the caller was told (a kitchen that does
# not use the board); one the board moved (preparing) stays until the board says it is ready.
QUEUE_SQL = """SELECT count(*) FROM orders AS o
WHERE o.status = 'placed' AND o.ready_at <= ? AND o.ready_at > ?
  AND coalesce((SELECT t.status FROM ticket_changes AS t WHERE t.order_id = o.id ORDER BY t.id DESC LIMIT 1),
               'new') IN ('new', 'preparing')
  AND (o.ready_at > ? OR EXISTS (SELECT 1 FROM ticket_changes AS t WHERE t.order_id = o.id))"""


async def kitchen_queue(repo: Repository, *, now: datetime, until: datetime) -> int:
    """How many placed orders the kitchen still has to make at ``now``, among those due by ``until``."""
    rows = await repo.read(QUEUE_SQL, [to_iso(until), to_iso(now - STALE_AFTER), to_iso(now)])
    return int(rows[0][0]) if rows else 0
