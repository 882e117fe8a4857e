"""The owner's dashboard: datasette-dashboards configuration, its charts as Vega-Lite over SQL.

Every chart reads the same two filters, ``since`` and ``until``: local dates in the restaurant's
time zone. Days, weeks and hours are local too: each query shifts stored UTC times by the offset
of the period they fall in (``tz_periods()``, see ``localtime.py``), in native SQL, and finds the
orders of the range through the index on ``orders.created_at``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

SLUG = "owner"
DEFAULT_DAYS = 90

# Local time: tz is the zone's periods of constant offset, span the range as UTC bounds.
_WITH = """WITH tz AS MATERIALIZED (
    SELECT json_extract(value, '$[0]') AS lo, json_extract(value, '$[1]') AS hi,
           json_extract(value, '$[2]') AS shift
    FROM json_each(tz_periods())
), span AS MATERIALIZED (SELECT day_start_utc(:since) AS lo, day_end_utc(:until) AS hi)
"""
# Each order of the range once, with tz.shift its local offset.
_ORDERS = """FROM span, tz JOIN orders AS o
  ON o.created_at >= max(tz.lo, span.lo) AND o.created_at < min(tz.hi, span.hi)"""
_WEEK = "date(o.created_at, tz.shift, '-6 days', 'weekday 1')"  # the Monday starting the week


def _html(expr: str) -> str:
    """Text shown by the table chart, which writes cells as HTML: a caller's words stay text."""
    return f"replace(replace(replace(coalesce({expr}, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _dollars(cents: str) -> str:
    """Integer cents -> '$1,234.50', exactly (no floating point)."""
    return f"printf('$%,d.%02d', coalesce({cents}, 0) / 100, coalesce({cents}, 0) % 100)"


def _money_axis(field: str, title: str) -> dict[str, Any]:
    return {"field": field, "type": "quantitative", "title": title, "axis": {"format": "$,.0f"}}


# One bar per week, labelled by its Monday.
_WEEK_AXIS = {"field": "week", "type": "ordinal", "timeUnit": "yearmonthdate", "title": "Week of"}


def _bars(x: dict[str, Any], y: dict[str, Any], **encoding: Any) -> dict[str, Any]:
    return {"mark": {"type": "bar", "tooltip": True}, "encoding": {"x": x, "y": y, **encoding}}


CHARTS: dict[str, dict[str, Any]] = {
    "sales": {
        "title": "Sales",
        "library": "metric",
        "query": _WITH + f"SELECT {_dollars('sum(o.total_cents)')} AS sales\n{_ORDERS}\nWHERE o.status = 'placed'",
        "display": {"field": "sales"},
    },
    "orders": {
        "title": "Orders placed",
        "library": "metric",
        "query": _WITH + f"SELECT printf('%,d', count(*)) AS orders\n{_ORDERS}\nWHERE o.status = 'placed'",
        "display": {"field": "orders"},
    },
    "average_order": {
        "title": "Average order",
        "library": "metric",
        "query": _WITH + f"SELECT {_dollars('CAST(round(avg(o.total_cents)) AS INTEGER)')} AS average\n{_ORDERS}\n"
        "WHERE o.status = 'placed'",
        "display": {"field": "average"},
    },
    "repeat_rate": {
        "title": "Repeat rate (callers of the range who have ordered more than once)",
        "library": "metric",
        "query": _WITH + "SELECT coalesce(printf('%d%%', round(100.0 * avg(c.order_count >= 2))), '-') AS repeat_rate\n"
        f"FROM customers AS c WHERE c.id IN (SELECT o.customer_id {_ORDERS} WHERE o.status = 'placed')",
        "display": {"field": "repeat_rate"},
    },
    "sales_per_day": {
        "title": "Sales per day",
        "library": "vega-lite",
        "query": _WITH
        + "SELECT date(o.created_at, tz.shift) AS day, count(*) AS orders, sum(o.total_cents) / 100.0 AS sales\n"
        f"{_ORDERS}\nWHERE o.status = 'placed'\nGROUP BY day ORDER BY day",
        "display": _bars(
            {"field": "day", "type": "temporal", "timeUnit": "yearmonthdate", "title": None},
            _money_axis("sales", "Sales"),
        ),
    },
    "sales_per_week": {
        "title": "Sales per week (weeks start on Monday)",
        "library": "vega-lite",
        "query": _WITH + f"SELECT {_WEEK} AS week, count(*) AS orders, sum(o.total_cents) / 100.0 AS sales\n"
        f"{_ORDERS}\nWHERE o.status = 'placed'\nGROUP BY week ORDER BY week",
        "display": _bars(
            _WEEK_AXIS,
            _money_axis("sales", "Sales"),
        ),
    },
    "orders_by_hour": {
        "title": "Orders by hour of the day",
        "library": "vega-lite",
        "query": _WITH + "SELECT CAST(strftime('%H', o.created_at, tz.shift) AS INTEGER) AS hour, count(*) AS orders\n"
        f"{_ORDERS}\nWHERE o.status = 'placed'\nGROUP BY hour ORDER BY hour",
        "display": _bars(
            {"field": "hour", "type": "ordinal", "title": "Hour (local time)"},
            {"field": "orders", "type": "quantitative", "title": "Orders"},
        ),
    },
    "top_items": {
        "title": "Top items",
        "library": "vega-lite",
        "query": _WITH
        + "SELECT i.name AS item, sum(i.quantity) AS sold, sum(i.quantity * i.unit_price_cents) / 100.0 AS revenue\n"
        f"{_ORDERS}\nJOIN order_items AS i ON i.order_id = o.id\nWHERE o.status = 'placed'\n"
        "GROUP BY i.name ORDER BY sold DESC LIMIT 10",
        "display": _bars(
            {"field": "sold", "type": "quantitative", "title": "Sold"},
            {"field": "item", "type": "nominal", "sort": "-x", "title": None},
            tooltip=[
                {"field": "item", "type": "nominal"},
                {"field": "sold", "type": "quantitative"},
                {"field": "revenue", "type": "quantitative", "format": "$,.2f"},
            ],
        ),
    },
    "new_vs_returning": {
        "title": "New and returning callers per week",
        "library": "vega-lite",
        # New: first seen that week. The inner query (kept apart by OFFSET) computes each week once.
        "query": _WITH + "SELECT week, CASE WHEN first_seen >= week THEN 'new' ELSE 'returning' END AS caller,\n"
        "       count(DISTINCT customer_id) AS callers\n"
        f"FROM (SELECT {_WEEK} AS week, o.customer_id, date(c.created_at, tz.shift) AS first_seen\n"
        f"      {_ORDERS}\n      JOIN customers AS c ON c.id = o.customer_id\n      WHERE o.status = 'placed'\n"
        "      LIMIT -1 OFFSET 0)\n"
        "GROUP BY week, caller ORDER BY week, caller",
        "display": _bars(
            _WEEK_AXIS,
            {"field": "callers", "type": "quantitative", "title": "Callers who ordered"},
            color={"field": "caller", "type": "nominal", "title": None},
        ),
    },
    "average_rating": {
        "title": "Average rating per week (1 to 5)",
        "library": "vega-lite",
        "query": _WITH + f"SELECT {_WEEK} AS week, round(avg(f.rating), 2) AS rating, count(*) AS ratings\n"
        f"{_ORDERS}\nJOIN feedback AS f ON f.call_id = o.call_id\nGROUP BY week ORDER BY week",
        "display": {
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {
                "x": {"field": "week", "type": "temporal", "timeUnit": "yearmonthdate", "title": None},
                "y": {"field": "rating", "type": "quantitative", "title": "Rating", "scale": {"domain": [1, 5]}},
            },
        },
    },
    "abandoned": {
        "title": "Abandoned orders: why the call ended",
        "library": "vega-lite",
        "query": _WITH + "SELECT coalesce(k.end_reason, 'still open or unknown') AS reason, count(*) AS calls\n"
        f"{_ORDERS}\nJOIN calls AS k ON k.id = o.call_id\nWHERE o.status = 'abandoned'\n"
        "GROUP BY reason ORDER BY calls DESC",
        "display": _bars(
            {"field": "calls", "type": "quantitative", "title": "Calls"},
            {"field": "reason", "type": "nominal", "sort": "-x", "title": None},
        ),
    },
    "low_ratings": {
        "title": "Latest low ratings (1 or 2)",
        "library": "table",
        "query": _WITH + "SELECT strftime('%Y-%m-%d %H:%M', o.created_at,\n"
        '         (SELECT tz.shift FROM tz WHERE tz.lo <= o.created_at ORDER BY tz.lo DESC LIMIT 1)) AS "when",\n'
        f"       f.rating AS rating, {_html('c.label')} AS caller, {_html('f.comment')} AS comment,\n"
        f'       {_dollars("o.total_cents")} AS "order"\n'
        "FROM orders AS o JOIN feedback AS f ON f.call_id = o.call_id\n"
        "LEFT JOIN customers AS c ON c.id = o.customer_id\n"
        # The bounds as plain expressions (not the span row) let SQLite walk the index newest
        # first and stop at the tenth match instead of sorting the whole range.
        "WHERE o.created_at >= day_start_utc(:since) AND o.created_at < day_end_utc(:until) AND f.rating <= 2\n"
        "ORDER BY o.created_at DESC LIMIT 10",
    },
}

# Grid of the dashboard, in the order the owner reads it.
LAYOUT = [
    ["sales", "orders", "average_order", "repeat_rate"],
    ["sales_per_day", "sales_per_day", "sales_per_week", "sales_per_week"],
    ["orders_by_hour", "orders_by_hour", "top_items", "top_items"],
    ["new_vs_returning", "new_vs_returning", "average_rating", "average_rating"],
    ["abandoned", "abandoned", "low_ratings", "low_ratings"],
]


def dashboard_config(database: str, *, today: date, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The ``datasette-dashboards`` plugin configuration for the database served as ``database``."""
    since = today - timedelta(days=days - 1)
    return {
        SLUG: {
            "title": "Bella Vista: how the restaurant is doing",
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
    _WITH
    + """SELECT date(o.created_at, tz.shift) AS day, count(*) AS orders,
       sum((SELECT sum(quantity) FROM order_items WHERE order_id = o.id)) AS items,
       sum(o.subtotal_cents) AS subtotal_cents, sum(o.tip_cents) AS tip_cents, sum(o.total_cents) AS total_cents,
       CAST(round(avg(o.total_cents)) AS INTEGER) AS average_order_cents
"""
    + _ORDERS
    + "\nWHERE o.status = 'placed'\nGROUP BY day ORDER BY day DESC"
)
