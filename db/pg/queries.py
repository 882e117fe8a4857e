"""PostgreSQL's reads: the caller lookup, a call's summary, open calls; and ``?`` placeholders made ``%s``.

Column lists come from the models (``db.models``), as in ``db.calls``, and the rows come out in the
same order, so ``db.calls``' row readers build the same profiles from either backend.
"""

from __future__ import annotations

from db import calls
from db.calls import MAX_FACTS
from db.models import CallerFact, CustomerBase, OrderLine, columns

_CUSTOMER = columns(CustomerBase)
_LINE = columns(OrderLine)
_FACT = columns(CallerFact)


def _listed(alias: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{alias}.{name}" for name in names)


_PROFILES_SQL = f"""
SELECT c.id, c.participant_identity, {_listed("c", _CUSTOMER)},
       (SELECT json_agg(json_build_array({_listed("f", _FACT)}) ORDER BY f.kind, f.stated_at DESC, f.id DESC)::text
        FROM (SELECT * FROM caller_facts
              WHERE customer_id = c.id AND superseded_at IS NULL AND value IS NOT NULL
              ORDER BY kind, stated_at DESC, id DESC LIMIT {MAX_FACTS}) AS f) AS facts,
       (SELECT json_agg(json_build_array({_listed("u", _LINE)}) ORDER BY u.position)::text
        FROM order_items AS u WHERE u.order_id = c.usual_order_id) AS usual,
       o.created_at, o.total_cents,
       {_listed("i", _LINE)}
FROM customers AS c
LEFT JOIN orders AS o ON o.id = c.last_order_id
LEFT JOIN order_items AS i ON i.order_id = o.id
"""
RECALL_SQL = _PROFILES_SQL + "WHERE c.participant_identity = %s ORDER BY i.position"
HOUSEHOLD_SQL = _PROFILES_SQL + "WHERE c.household = %s ORDER BY c.id, i.position"

CALL_SUMMARY_SQL = """
SELECT c.end_reason, o.id AS order_id, o.status, o.total_cents, o.kitchen_note,
       (SELECT string_agg(i.quantity || 'x ' || i.name, ', ' ORDER BY i.position)
        FROM order_items AS i WHERE i.order_id = o.id) AS items,
       (SELECT rating FROM feedback WHERE call_id = c.id) AS rating,
       (SELECT count(*) FROM messages WHERE call_id = c.id) AS messages
FROM calls AS c LEFT JOIN orders AS o ON o.call_id = c.id WHERE c.id = %s
"""

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


# A profile's last placed orders: SQLite's statement, which PostgreSQL runs as it is.
PAST_ORDERS_SQL = qmark(calls.PAST_ORDERS_SQL)
