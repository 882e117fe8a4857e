"""PostgreSQL's own reads: open calls with their owners' heartbeats; and ``?`` placeholders made ``%s``.

The caller lookup and a call's summary are written once for both backends (``db.statements.calls``).
"""

from __future__ import annotations

# Open calls with their owner, their last sign of life, and whether the owner's heartbeat is known
# and past the lease (by the server's clock, the one clock every host shares).
OPEN_CALLS_SQL = """
SELECT k.id, k.owner_host, k.owner_pid, k.owner_started,
       greatest(k.started_at, coalesce(o.updated_at, '')) AS last_seen,
       h.heartbeat_at IS NOT NULL AS known,
       coalesce(h.heartbeat_at < now() - make_interval(secs => %s), false) AS expired
FROM calls AS k
LEFT JOIN orders AS o ON o.call_id = k.id
LEFT JOIN worker_hosts AS h ON h.host = k.owner_host AND h.pid = k.owner_pid AND h.started = k.owner_started
WHERE k.ended_at IS NULL
"""
OPEN_CALLS_OF_CALLER_SQL = (
    OPEN_CALLS_SQL + "  AND k.customer_id = (SELECT id FROM customers WHERE participant_identity = %s)\n"
)


def qmark(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``), outside quotes."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)
