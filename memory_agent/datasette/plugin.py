"""The memory-agent Datasette plugin: local time and safe search in SQL, dollars, and the guards.

It does nothing unless the metadata has a ``memory-agent`` plugin block (written by
``memory-agent inspect``), so registering it never changes another Datasette.

- SQL functions in the restaurant's time zone: ``day_start_utc(day)``, ``day_end_utc(day)``,
  ``hour_start_utc(day, hour)`` (local -> stored time), ``local_date(time)``, ``local_time(time)``
  (stored -> local); and ``caller_key(text)``, ``search_terms(text)``; ``call_cost(prompt, cached,
  completion, stt_ms, tts_characters)``: a call's cost in millionths, at the configured prices.
- Cells of ``*_cents`` columns read as dollars: 3650 is ``$36.50``.
- Requests whose Host is not the loopback name served are refused (DNS rebinding).
- Without ``allow_sql``, SQL is only what the dashboard and canned queries run: any other
  ``?sql=`` or ``_where=`` is refused, whoever asks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from datasette import hookimpl  # type: ignore[import-untyped]
from datasette.utils.asgi import Response  # type: ignore[import-untyped]
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from markupsafe import Markup, escape

from memory_agent.costs import prices_from_config, usage_cost_micros
from memory_agent.datasette import kitchen, localtime
from memory_agent.datasette.dashboard import SLUG, chart_queries
from memory_agent.datasette.sqlfunctions import caller_key, end_reason_words, in_words, search_terms

TEMPLATES = Path(__file__).resolve().parent / "templates"

NAME = "memory-agent"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _config(datasette: Any) -> dict[str, Any] | None:
    config = datasette.plugin_config(NAME)
    return config if isinstance(config, dict) else None


@hookimpl
def prepare_connection(conn: sqlite3.Connection, database: str, datasette: Any) -> None:
    config = _config(datasette)
    if config is None:
        return
    zone = str(config.get("timezone") or "UTC")
    conn.create_function("day_start_utc", 1, lambda text: localtime.day_start_utc(text, zone), deterministic=True)
    conn.create_function("day_end_utc", 1, lambda text: localtime.day_end_utc(text, zone), deterministic=True)
    conn.create_function(
        "hour_start_utc", 2, lambda day, hour: localtime.hour_start_utc(day, hour, zone), deterministic=True
    )
    conn.create_function("local_date", 1, lambda text: localtime.local_date(text, zone), deterministic=True)
    conn.create_function("local_time", 1, lambda text: localtime.local_time(text, zone), deterministic=True)
    conn.create_function("caller_key", 1, caller_key, deterministic=True)
    conn.create_function("search_terms", 1, search_terms, deterministic=True)
    conn.create_function("end_reason_words", 1, end_reason_words, deterministic=True)
    prices = prices_from_config(config.get("prices"))
    conn.create_function(
        "call_cost",
        5,
        lambda prompt, cached, completion, stt_ms, tts: usage_cost_micros(
            prices,
            prompt_tokens=prompt or 0,
            cached_tokens=cached or 0,
            completion_tokens=completion or 0,
            stt_audio_ms=stt_ms or 0,
            tts_characters=tts or 0,
        ),
        deterministic=True,
    )


@hookimpl
def prepare_jinja2_environment(env: Environment, datasette: Any) -> None:
    """Facet lists in words (``templates/_facet_results.html``), as the cells are."""
    env.filters["in_words"] = lambda label, column: in_words(column, label) if _config(datasette) else label
    if _config(datasette) is not None and env.loader is not None:
        env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), env.loader])


@hookimpl
def register_routes(datasette: Any) -> list[tuple[str, Any]]:
    """The kitchen board's page and endpoints (``kitchen.py``)."""
    return kitchen.routes() if _config(datasette) is not None else []


@hookimpl
def skip_csrf(datasette: Any, scope: Scope) -> bool | None:
    """The kitchen board's writes take JSON bodies only, which no cross-site form can send."""
    if _config(datasette) is None or scope.get("type") != "http":
        return None
    return str(scope.get("path", "")).startswith(f"{kitchen.PATH}/") or None


@hookimpl
def render_cell(value: Any, column: str, datasette: Any) -> Markup | None:
    """Money columns (integer cents) read as dollars; times in the restaurant's local time (UTC on hover);
    why a call ended and an order's status in words."""
    config = _config(datasette)
    if config is None or not isinstance(column, str):
        return None
    if (column.endswith("_at") or column == "at") and isinstance(value, str):
        local = localtime.local_readable(value, str(config.get("timezone") or "UTC"))
        return None if local is None else Markup(f'<span title="{escape(value)}">{escape(local)}</span>')
    if column in ("end_reason", "outcome", "transfer_reason", "reason", "transfer_status", "status", "order_status"):
        shown = in_words(column, value)
        return None if shown is value else Markup(escape(shown))
    if not column.endswith("_cents"):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        sign = "-" if value < 0 else ""
        return Markup(escape(f"{sign}${abs(value) // 100:,}.{abs(value) % 100:02d}"))
    return None


@hookimpl
def forbidden(datasette: Any, request: Any, message: str) -> Response | None:
    if _config(datasette) is None:
        return None
    return Response.html(
        "<!DOCTYPE html><title>Log in</title><h1>Log in first</h1>"
        "<p>Open the login link that <code>memory-agent inspect</code> printed when it started."
        " Restarting it prints a new one.</p>",
        status=403,
    )


@hookimpl
def asgi_wrapper(datasette: Any) -> Callable[[App], App]:
    def wrap(app: App) -> App:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            config = _config(datasette)
            if scope["type"] == "http" and config is not None:
                refusal = _refusal(scope, config)
                if refusal is not None:
                    await _send_text(send, *refusal)
                    return
            if scope["type"] == "http" and config is not None and scope.get("path") == LOGIN_PATH:
                send = _landing_on_the_dashboard(send)
            await app(scope, receive, send)

        return guarded

    return wrap


LOGIN_PATH = "/-/auth-token"


def _landing_on_the_dashboard(send: Send) -> Send:
    """The login link leads to the owner's dashboard instead of Datasette's list of tables."""

    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and message.get("status") in (301, 302, 303):
            message["headers"] = [
                (name, f"/-/dashboards/{SLUG}".encode() if name.lower() == b"location" and value == b"/" else value)
                for name, value in message.get("headers") or []
            ]
        await send(message)

    return sending


def _refusal(scope: Scope, config: dict[str, Any]) -> tuple[int, str] | None:
    hosts = config.get("hosts")
    if hosts:
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
        if host not in hosts:
            return 421, f"This server answers only to {hosts[0]}, not to {host or 'a request without a Host'}."
    if config.get("allow_sql"):
        return None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if "_where" in query:
        return 403, "Arbitrary SQL is off: _where= is refused (memory-agent inspect --allow-sql turns it on)."
    allowed = set(chart_queries().values())
    for sql in query.get("sql", []):
        if sql not in allowed:
            return 403, "Arbitrary SQL is off: use the dashboard and canned queries (or --allow-sql)."
    return None


async def _send_text(send: Send, status: int, text: str) -> None:
    body = json.dumps({"ok": False, "error": text, "status": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})
