"""The owner's dashboard: datasette-dashboards configuration, its charts as Vega-Lite over SQL.

Every chart reads the same two filters, ``since`` and ``until``: local dates in the restaurant's
time zone (empty is no limit). Days, weeks and hours are local too, and no stored time is
converted row by row: the SQL functions of ``plugin.py`` turn each local day (or hour) into its
UTC bounds, and each period's orders are found and summed through the index on
``orders.created_at``. That keeps a chart over a year of a million orders in SQLite's own loops.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from db.statements.privacy import ASKED_ON_CALL
from memory_agent.datasette.sqlfunctions import OUTCOME_WORDS, TRANSFER_REASON_WORDS, words_sql

SLUG = "owner"
DEFAULT_DAYS = 90

# Keeps SQLite from merging a subquery into the query around it, which would run each period's
# sums once for every use of their result instead of once.
_ONCE = "LIMIT -1 OFFSET 0"
# The orders of the range, by the index on created_at.
_IN_RANGE = "o.created_at >= day_start_utc(:since) AND o.created_at < day_end_utc(:until)"
# The local days of the range, clipped to the days that have orders (an open or absurd range
# costs nothing); no day at all when the range is impossible.
_DAYS = """WITH RECURSIVE span AS MATERIALIZED (
    SELECT max(coalesce(date(nullif(:since, '')), '0000-01-01'),
               local_date((SELECT min(created_at) FROM orders))) AS first,
           min(coalesce(date(nullif(:until, '')), '9999-12-31'),
               local_date((SELECT max(created_at) FROM orders))) AS last
), days(day) AS (
    SELECT first FROM span WHERE first <= last
    UNION ALL SELECT date(day, '+1 day') FROM days, span WHERE day < span.last
)"""
# Weeks start on Monday; the first and last are cut to the range.
_WEEKS = """, weeks(week, lo, hi) AS (
    SELECT date(day, '-6 days', 'weekday 1'), day_start_utc(day),
           day_end_utc(min(date(day, '-6 days', 'weekday 1', '+6 days'), span.last))
    FROM days, span WHERE day = span.first OR strftime('%w', day) = '1'
)
"""


def _per_week(values: str, source: str = "FROM orders AS o") -> str:
    """One JSON array of ``values`` per week, over the week's orders."""
    return (
        _DAYS + _WEEKS + f"SELECT week, (SELECT json_array({values}) {source}\n"
        "  WHERE o.created_at >= weeks.lo AND o.created_at < weeks.hi AND o.status = 'placed') AS t\n"
        f"FROM weeks {_ONCE}"
    )


def _html(expr: str) -> str:
    """Text shown by the table chart, which writes cells as HTML: a caller's words stay text."""
    return f"replace(replace(replace(coalesce({expr}, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _dollars(cents: str) -> str:
    """Integer cents -> '$1,234.50', exactly (no floating point)."""
    return f"printf('$%,d.%02d', coalesce({cents}, 0) / 100, coalesce({cents}, 0) % 100)"


def _money_axis(field: str, title: str) -> dict[str, Any]:
    return {"field": field, "type": "quantitative", "title": title, "axis": {"format": "$,.0f"}}


# Time axes tick once a day (or week) at most, so a short range never labels one day twice;
# counts tick on whole numbers.
_DAY_TICKS = {"tickCount": {"interval": "day", "step": 1}, "format": "%b %d", "labelOverlap": True}
_WEEK_TICKS = {"tickCount": {"interval": "week", "step": 1}, "format": "%b %d", "labelOverlap": True}
_COUNT_TICKS = {"tickMinStep": 1, "format": "d"}

# One bar per week, labelled by its Monday.
_WEEK_AXIS = {"field": "week", "type": "ordinal", "timeUnit": "yearmonthdate", "title": "Week of"}


def _bars(x: dict[str, Any], y: dict[str, Any], **encoding: Any) -> dict[str, Any]:
    return {"mark": {"type": "bar", "tooltip": True}, "encoding": {"x": x, "y": y, **encoding}}


def _placed(select: str) -> str:
    return f"SELECT {select}\nFROM orders AS o\nWHERE {_IN_RANGE} AND o.status = 'placed'"


CHARTS: dict[str, dict[str, Any]] = {
    "sales": {
        "title": "Sales",
        "library": "metric",
        "query": _placed(f"{_dollars('sum(o.total_cents)')} AS sales"),
        "display": {"field": "sales"},
    },
    "orders": {
        "title": "Orders placed",
        "library": "metric",
        "query": _placed("printf('%,d', count(*)) AS orders"),
        "display": {"field": "orders"},
    },
    "average_order": {
        "title": "Average order",
        "library": "metric",
        "query": _placed(f"{_dollars('CAST(round(avg(o.total_cents)) AS INTEGER)')} AS average"),
        "display": {"field": "average"},
    },
    "repeat_rate": {
        "title": "Repeat rate (callers of the range who have ordered more than once)",
        "library": "metric",
        "query": "SELECT coalesce(printf('%d%%', round(100.0 * avg(c.order_count >= 2))), '-') AS repeat_rate\n"
        "FROM customers AS c WHERE c.id IN (\n"
        f"  SELECT o.customer_id FROM orders AS o WHERE {_IN_RANGE} AND o.status = 'placed')",
        "display": {"field": "repeat_rate"},
    },
    "sales_per_day": {
        "title": "Sales per day",
        "library": "vega-lite",
        "query": _DAYS + "\nSELECT day, json_extract(t, '$[0]') AS orders, json_extract(t, '$[1]') / 100.0 AS sales\n"
        "FROM (SELECT day, (SELECT json_array(count(*), sum(o.total_cents)) FROM orders AS o\n"
        "                   WHERE o.created_at >= day_start_utc(day) AND o.created_at < day_end_utc(day)\n"
        "                     AND o.status = 'placed') AS t\n"
        f"      FROM days {_ONCE})\n"
        "WHERE orders > 0",
        "display": _bars(
            {"field": "day", "type": "temporal", "timeUnit": "yearmonthdate", "title": None, "axis": _DAY_TICKS},
            _money_axis("sales", "Sales"),
        ),
    },
    "sales_per_week": {
        "title": "Sales per week (weeks start on Monday)",
        "library": "vega-lite",
        "query": "SELECT week, json_extract(t, '$[0]') AS orders, json_extract(t, '$[1]') / 100.0 AS sales\nFROM ("
        + _per_week("count(*), sum(o.total_cents)")
        + ")\nWHERE orders > 0",
        "display": _bars(_WEEK_AXIS, _money_axis("sales", "Sales")),
    },
    "orders_by_hour": {
        "title": "Orders by hour of the day",
        "library": "vega-lite",
        "query": _DAYS + ", hours(hour) AS (SELECT 0 UNION ALL SELECT hour + 1 FROM hours WHERE hour < 23)\n"
        "SELECT hour, sum((SELECT count(*) FROM orders AS o\n"
        "                  WHERE o.created_at >= hour_start_utc(day, hour)\n"
        "                    AND o.created_at < hour_start_utc(day, hour + 1) AND o.status = 'placed')) AS orders\n"
        "FROM days, hours GROUP BY hour HAVING orders > 0 ORDER BY hour",
        "display": _bars(
            {"field": "hour", "type": "ordinal", "title": "Hour (local time)"},
            {"field": "orders", "type": "quantitative", "title": "Orders", "axis": _COUNT_TICKS},
        ),
    },
    "top_items": {
        "title": "Top items",
        "library": "vega-lite",
        "query": "SELECT i.name AS item, sum(i.quantity) AS sold,\n"
        "       sum(i.quantity * i.unit_price_cents) / 100.0 AS revenue\n"
        f"FROM orders AS o JOIN order_items AS i ON i.order_id = o.id\nWHERE {_IN_RANGE} AND o.status = 'placed'\n"
        "GROUP BY i.name ORDER BY sold DESC LIMIT 10",
        "display": _bars(
            {"field": "sold", "type": "quantitative", "title": "Sold", "axis": _COUNT_TICKS},
            {"field": "item", "type": "nominal", "sort": "-x", "title": None},
            tooltip=[
                {"field": "item", "type": "nominal"},
                {"field": "sold", "type": "quantitative"},
                {"field": "revenue", "type": "quantitative", "format": "$,.2f"},
            ],
        ),
    },
    "new_vs_returning": {
        "title": "New and returning callers per week (new: first call that week)",
        "library": "vega-lite",
        "query": "SELECT week, 'new' AS caller, json_extract(t, '$[0]') AS callers FROM weekly\n"
        "UNION ALL SELECT week, 'returning', json_extract(t, '$[1]') - json_extract(t, '$[0]') FROM weekly\n"
        "ORDER BY week, caller",
        "display": _bars(
            _WEEK_AXIS,
            {"field": "callers", "type": "quantitative", "title": "Callers who ordered", "axis": _COUNT_TICKS},
            color={"field": "caller", "type": "nominal", "title": None},
        ),
    },
    "average_rating": {
        "title": "Average rating per week (1 to 5)",
        "library": "vega-lite",
        "query": "SELECT week, round(json_extract(t, '$[0]'), 2) AS rating, json_extract(t, '$[1]') AS ratings\nFROM ("
        + _per_week("avg(f.rating), count(*)", "FROM orders AS o JOIN feedback AS f ON f.call_id = o.call_id")
        + ")\nWHERE ratings > 0",
        "display": {
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {
                "x": {
                    "field": "week",
                    "type": "temporal",
                    "timeUnit": "yearmonthdate",
                    "title": None,
                    "axis": _WEEK_TICKS,
                },
                "y": {"field": "rating", "type": "quantitative", "title": "Rating", "scale": {"domain": [1, 5]}},
            },
        },
    },
    "abandoned": {
        "title": "Abandoned orders: why the call ended",
        "library": "vega-lite",
        "query": "SELECT end_reason_words(k.end_reason) AS reason, count(*) AS calls\n"
        f"FROM orders AS o JOIN calls AS k ON k.id = o.call_id\nWHERE {_IN_RANGE} AND o.status = 'abandoned'\n"
        "GROUP BY reason ORDER BY calls DESC",
        "display": _bars(
            {"field": "calls", "type": "quantitative", "title": "Calls", "axis": _COUNT_TICKS},
            {"field": "reason", "type": "nominal", "sort": "-x", "title": None},
        ),
    },
    "low_ratings": {
        "title": "Latest low ratings (1 or 2)",
        "library": "table",
        # SQLite walks the index newest first and stops at the tenth match.
        "query": 'SELECT local_time(o.created_at) AS "when", f.rating AS rating,\n'
        f"       {_html('c.label')} AS caller, {_html('f.comment')} AS comment,\n"
        f'       {_dollars("o.total_cents")} AS "order"\n'
        "FROM orders AS o JOIN feedback AS f ON f.call_id = o.call_id\n"
        "LEFT JOIN customers AS c ON c.id = o.customer_id\n"
        f"WHERE {_IN_RANGE} AND f.rating <= 2\n"
        "ORDER BY o.created_at DESC LIMIT 10",
    },
    "identity_attempts": {
        "title": "Names tried on a number that matched none of its callers (past the limit: refused)",
        "library": "table",
        # A number is shown by the start of its keyed hash (the same number, the same text), never itself.
        "query": 'SELECT local_time(max(a.attempted_at)) AS "last tried", substr(a.subject, 1, 10) AS number,\n'
        "       sum(a.outcome = 'wrong_name') AS \"wrong names\", sum(a.outcome = 'refused') AS refused,\n"
        "       count(DISTINCT a.call_id) AS calls\n"
        "FROM identity_attempts AS a\n"
        "WHERE a.attempted_at >= day_start_utc(:since) AND a.attempted_at < day_end_utc(:until)\n"
        "GROUP BY a.subject ORDER BY max(a.attempted_at) DESC LIMIT 10",
    },
}

# The callers who ordered in each week (each once), and how many of them first called that week:
# their first call is read from the customer and compared with the week's UTC bounds.
CHARTS["new_vs_returning"]["query"] = (
    _DAYS + _WEEKS + ", weekly AS MATERIALIZED (SELECT week, (\n"
    "    SELECT json_array(coalesce(sum(c.created_at >= weeks.lo), 0), count(*)) FROM customers AS c\n"
    "    WHERE c.id IN (SELECT o.customer_id FROM orders AS o\n"
    "                   WHERE o.created_at >= weeks.lo AND o.created_at < weeks.hi AND o.status = 'placed')) AS t\n"
    "  FROM weeks)\n" + CHARTS["new_vs_returning"]["query"]
)

# -- orders to the till (the outbox) ----------------------------------------------------------

# Each destination's state of one order, in words: "webhook: delivered; square: failed after 12 tries (…)".
_DELIVERY_STATE = """coalesce((SELECT group_concat(d.destination || ': ' || CASE d.status
        WHEN 'delivered' THEN 'delivered ' || local_time(d.delivered_at)
        WHEN 'dead' THEN 'FAILED after ' || d.attempts || ' tries, ' || coalesce(d.last_error, '')
        ELSE 'retrying (' || d.attempts || ' tries so far, next ' || local_time(d.next_attempt_at) || ')' END, '; ')
      FROM deliveries AS d WHERE d.outbox_id = x.id),
    CASE WHEN x.id IS NULL THEN 'not queued' ELSE 'waiting for the delivery worker' END)"""

CHARTS["till_problems"] = {
    "title": "Orders not at the till: failed deliveries first, then those still being tried",
    "library": "table",
    # The failed and pending deliveries and the orders no worker has taken yet, each by its partial index.
    "query": f"""SELECT local_time(o.created_at) AS "when", o.id AS "order", {_html(_DELIVERY_STATE)} AS delivery
FROM orders AS o JOIN outbox AS x ON x.order_id = o.id
WHERE {_IN_RANGE} AND (x.dispatched_at IS NULL
   OR x.id IN (SELECT outbox_id FROM deliveries WHERE status = 'dead')
   OR x.id IN (SELECT outbox_id FROM deliveries WHERE status = 'pending'))
ORDER BY EXISTS (SELECT 1 FROM deliveries AS d WHERE d.outbox_id = x.id AND d.status = 'dead') DESC,
         o.created_at DESC LIMIT 20""",
}

CHARTS["till_latest"] = {
    "title": "Latest orders and their delivery to the till",
    "library": "table",
    "query": f"""SELECT local_time(o.created_at) AS "when", o.id AS "order", {_dollars("o.total_cents")} AS total,
       {_html(_DELIVERY_STATE)} AS delivery
FROM orders AS o LEFT JOIN outbox AS x ON x.order_id = o.id
WHERE {_IN_RANGE} AND o.status = 'placed'
ORDER BY o.created_at DESC LIMIT 10""",
}

_TILL_ROW = ["till_problems", "till_problems", "till_latest", "till_latest"]

# -- how calls ended: outcomes, missed revenue, transfers to staff, messages left -----------------------

# The calls that began in the range, by the index on started_at.
_CALLS_IN_RANGE = "k.started_at >= day_start_utc(:since) AND k.started_at < day_end_utc(:until)"
_OUTCOME_WORDS = "CASE WHEN k.ended_at IS NULL THEN 'Still on the line' ELSE {} END".format(
    words_sql("k.outcome", OUTCOME_WORDS, "Not recorded")
)
_REASON_WORDS = words_sql("k.transfer_reason", TRANSFER_REASON_WORDS, "Other")
# A call that ended without an order while we were closed, or after a transfer that failed.
_MISSED = (
    "k.ended_at IS NOT NULL AND k.outcome NOT IN ('order_placed', 'order_for_later', 'erased')"
    " AND (k.restaurant_open = 0 OR k.transfer_status = 'failed')"
)

CHARTS.update(
    {
        "outcomes": {
            "title": "How calls ended",
            "library": "vega-lite",
            # A call that ended in an erasure went with it: its audit row (nothing personal) still counts it.
            "query": f"SELECT outcome, sum(n) AS calls FROM (\n"
            f"  SELECT {_OUTCOME_WORDS} AS outcome, count(*) AS n FROM calls AS k WHERE {_CALLS_IN_RANGE}\n"
            "  GROUP BY outcome\n  UNION ALL\n"
            f"  SELECT '{OUTCOME_WORDS['erased']}', count(*) FROM erasures AS e\n"
            "  WHERE e.erased_at >= day_start_utc(:since) AND e.erased_at < day_end_utc(:until)\n"
            f"    AND json_extract(e.counts, '$.{ASKED_ON_CALL}') = 1)\n"
            "GROUP BY outcome HAVING sum(n) > 0 ORDER BY calls DESC",
            "display": _bars(
                {"field": "calls", "type": "quantitative", "title": "Calls", "axis": {"tickMinStep": 1}},
                {"field": "outcome", "type": "nominal", "sort": "-x", "title": None},
            ),
        },
        "missed_revenue": {
            "title": "Missed revenue (calls without an order while closed or after a failed transfer,"
            " at the range's average order)",
            "library": "metric",
            "query": f"SELECT printf('%s (%d calls)', {_dollars('missed * average')}, missed) AS missed\n"
            f"FROM (SELECT count(*) AS missed FROM calls AS k WHERE {_CALLS_IN_RANGE} AND {_MISSED}),\n"
            "     (SELECT coalesce(CAST(round(avg(o.total_cents)) AS INTEGER), 0) AS average\n"
            f"      FROM orders AS o WHERE {_IN_RANGE} AND o.status = 'placed')",
            "display": {"field": "missed"},
        },
        "transfers": {
            "title": "Transfers to staff by reason (share: of all calls in the range)",
            "library": "table",
            "query": f"SELECT {_REASON_WORDS} AS reason, count(*) AS asked,\n"
            "       sum(k.transfer_status = 'transferred') AS \"put through\",\n"
            "       sum(k.transfer_status = 'failed') AS failed,\n"
            "       sum(k.transfer_status = 'unavailable') AS \"nobody to take it\",\n"
            "       printf('%.1f%%', 100.0 * count(*) / (SELECT count(*) FROM calls AS k WHERE "
            + _CALLS_IN_RANGE
            + ")) AS share\n"
            f"FROM calls AS k WHERE {_CALLS_IN_RANGE} AND k.transfer_reason IS NOT NULL\n"
            "GROUP BY reason ORDER BY asked DESC",
        },
        "staff_messages": {
            "title": "Messages for the staff (newest first)",
            "library": "table",
            "query": 'SELECT local_time(m.created_at) AS "when", '
            f"{_html('c.label')} AS caller, {_html('m.request')} AS message,\n"
            f'       {_html("m.callback_number")} AS "call back on"\n'
            "FROM staff_messages AS m LEFT JOIN customers AS c ON c.id = m.customer_id\n"
            "WHERE m.created_at >= day_start_utc(:since) AND m.created_at < day_end_utc(:until)\n"
            "ORDER BY m.created_at DESC LIMIT 20",
        },
    }
)

# The kitchen board's changes, newest first: ticket moves and dishes sold out, with who and when. Both
# tables are walked newest first by their key (the order they were written in), stopping at the 20th.
CHARTS["kitchen_log"] = {
    "title": "The kitchen board: ticket moves and dishes sold out (newest first)",
    "library": "table",
    "query": 'SELECT local_time(at) AS "when", what, by FROM (\n'
    "  SELECT * FROM (SELECT t.changed_at AS at, 'ticket #' || t.order_id || ' ' || t.status AS what,\n"
    f"                 {_html('t.changed_by')} AS by FROM ticket_changes AS t\n"
    "    WHERE t.changed_at >= day_start_utc(:since) AND t.changed_at < day_end_utc(:until)\n"
    "    ORDER BY t.id DESC LIMIT 20)\n"
    "  UNION ALL\n"
    "  SELECT * FROM (SELECT s.marked_at, 'sold out: ' || s.menu_item, "
    f"{_html('s.marked_by')} FROM sold_out AS s\n"
    "    WHERE s.day >= coalesce(nullif(:since, ''), '0000') AND s.day <= coalesce(nullif(:until, ''), '9999')\n"
    "    ORDER BY s.id DESC LIMIT 20))\n"
    "ORDER BY at DESC LIMIT 20",
}

# -- what calls cost: the providers' usage at the configured prices ------------------------------------

_COST = "call_cost(k.llm_prompt_tokens, k.llm_cached_tokens, k.llm_completion_tokens, k.stt_audio_ms, k.tts_characters)"


def _micros(amount: str) -> str:
    """Integer millionths -> '$0.0123' (to a hundredth of a cent, cut, never rounded up), exactly."""
    return f"printf('$%d.%04d', coalesce({amount}, 0) / 1000000, coalesce({amount}, 0) % 1000000 / 100)"


# Each local day's calls (by the index on started_at), their cost and the orders they placed.
COSTS_BY_DAY_SQL = f"""SELECT local_date(k.started_at) AS day, count(*) AS calls,
       coalesce(sum(o.status = 'placed'), 0) AS orders, sum({_COST}) AS cost
FROM calls AS k LEFT JOIN orders AS o ON o.call_id = k.id
WHERE {_CALLS_IN_RANGE}
GROUP BY day"""

CHARTS.update(
    {
        "cost_per_call": {
            "title": "Cost per call (LLM, speech recognition and speech, at the configured prices)",
            "library": "metric",
            "query": f"SELECT CASE WHEN sum(calls) > 0 THEN {_micros('sum(cost) / sum(calls)')} ELSE '-' END"
            f" AS cost\nFROM ({COSTS_BY_DAY_SQL})",
            "display": {"field": "cost"},
        },
        "cost_per_order": {
            "title": "Cost per order placed (every call's cost, over the orders placed)",
            "library": "metric",
            "query": f"SELECT CASE WHEN sum(orders) > 0 THEN {_micros('sum(cost) / sum(orders)')} ELSE '-' END"
            f" AS cost\nFROM ({COSTS_BY_DAY_SQL})",
            "display": {"field": "cost"},
        },
        "costs_by_day": {
            "title": "What calls cost, by day",
            "library": "table",
            "query": f"SELECT day, calls, orders, {_micros('cost')} AS cost,\n"
            f'       {_micros("cost / calls")} AS "per call",\n'
            f"       CASE WHEN orders > 0 THEN {_micros('cost / orders')} ELSE '-' END AS \"per order\"\n"
            f"FROM ({COSTS_BY_DAY_SQL})\nORDER BY day DESC LIMIT 31",
        },
    }
)

# Charts drawn as SVG (vega-embed reads this from the spec): sharp at any size, and their axes are text.
for _chart in CHARTS.values():
    if _chart["library"] == "vega-lite":
        _chart["display"]["usermeta"] = {"embedOptions": {"renderer": "svg"}}

# Grid of the dashboard, in the order the owner reads it.
LAYOUT = [
    ["sales", "orders", "average_order", "repeat_rate"],
    ["sales_per_day", "sales_per_day", "sales_per_week", "sales_per_week"],
    ["orders_by_hour", "orders_by_hour", "top_items", "top_items"],
    ["new_vs_returning", "new_vs_returning", "average_rating", "average_rating"],
    ["abandoned", "abandoned", "low_ratings", "low_ratings"],
    ["identity_attempts", "identity_attempts", "identity_attempts", "identity_attempts"],
    _TILL_ROW,
    ["outcomes", "outcomes", "missed_revenue", "missed_revenue"],
    ["transfers", "transfers", "staff_messages", "staff_messages"],
    ["kitchen_log", "kitchen_log", "kitchen_log", "kitchen_log"],
    ["cost_per_call", "cost_per_order", "costs_by_day", "costs_by_day"],
]


def dashboard_config(
    database: str, *, today: date, days: int = DEFAULT_DAYS, restaurant: str = "Bella Vista"
) -> dict[str, Any]:
    """The ``datasette-dashboards`` plugin configuration for the database served as ``database``."""
    since = today - timedelta(days=days - 1)
    return {
        SLUG: {
            "title": f"{restaurant}: how the restaurant is doing",
            "description": "Placed orders, callers and ratings between two dates, in the restaurant's time zone."
            " Money is in dollars.",
            "layout": LAYOUT,
            "filters": {
                "since": {"name": "From", "type": "date", "default": since.isoformat()},
                "until": {"name": "To", "type": "date", "default": today.isoformat()},
            },
            "charts": {slug: {"db": database, **chart} for slug, chart in CHARTS.items()},
        }
    }


def chart_queries() -> dict[str, str]:
    """Each chart's SQL by slug: the only SQL the dashboard sends when arbitrary SQL is off."""
    return {slug: chart["query"] for slug, chart in CHARTS.items()}


# Shown in place of the view of the same name: the same columns, in the restaurant's local days.
DAILY_SALES_SQL = (
    _DAYS
    + """
SELECT day, json_extract(t, '$[0]') AS orders, json_extract(t, '$[1]') AS items,
       json_extract(t, '$[2]') AS subtotal_cents, json_extract(t, '$[3]') AS tip_cents,
       json_extract(t, '$[4]') AS total_cents, json_extract(t, '$[5]') AS average_order_cents
FROM (SELECT day, (SELECT json_array(count(*),
                                     sum((SELECT sum(quantity) FROM order_items WHERE order_id = o.id)),
                                     sum(o.subtotal_cents), sum(o.tip_cents), sum(o.total_cents),
                                     CAST(round(avg(o.total_cents)) AS INTEGER))
                   FROM orders AS o
                   WHERE o.created_at >= day_start_utc(day) AND o.created_at < day_end_utc(day)
                     AND o.status = 'placed') AS t
      FROM days LIMIT -1 OFFSET 0)
WHERE orders > 0
ORDER BY day DESC"""
)
