"""Calls left open by a process that died: which ones, and how they are closed.

A call is closed as abandoned only when its owner is provably dead (``db.owner.is_dead``), or,
when its owner cannot be checked from this machine (or was never recorded), once nothing has
happened on it for ``LEASE``. Its end time is the last moment it was known to be alive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from db.clock import to_iso
from db.owner import Owner, is_dead, machine_id

LEASE = timedelta(hours=2)

REASON_DEAD = "abandoned: the process running the call ({owner}) died before the call ended"
REASON_LEASE = "abandoned: no activity for {hours:g} hours and its process could not be checked"

# Open calls with their owner and their last sign of life (the call's start or its order's last change).
OPEN_CALLS_SQL = """
SELECT k.id, k.owner_host, k.owner_pid, k.owner_started,
       max(k.started_at, coalesce(o.updated_at, '')) AS last_seen
FROM calls AS k LEFT JOIN orders AS o ON o.call_id = k.id
WHERE k.ended_at IS NULL
"""
OPEN_CALLS_OF_CALLER_SQL = (
    OPEN_CALLS_SQL
    + """
  AND k.customer_id = (SELECT id FROM customers WHERE participant_identity = ?)
"""
)


@dataclass(frozen=True)
class StaleCall:
    call_id: str
    ended_at: str
    reason: str


def find_stale(
    rows: Iterable[tuple[str, str | None, int | None, str | None, str]],
    *,
    now: datetime,
    lease: timedelta = LEASE,
) -> list[StaleCall]:
    """The open calls among ``rows`` (from ``OPEN_CALLS_SQL``) that nobody is running any more."""
    expired_before = to_iso(now - lease)
    here = machine_id()
    stale = []
    for call_id, host, pid, started, last_seen in rows:
        if host == here and pid is not None:
            owner = Owner(host=host, pid=int(pid), started=started)
            if is_dead(owner):
                stale.append(StaleCall(call_id, last_seen, REASON_DEAD.format(owner=owner.describe())))
        elif last_seen < expired_before:
            hours = lease.total_seconds() / 3600
            stale.append(StaleCall(call_id, last_seen, REASON_LEASE.format(hours=hours)))
    return stale
