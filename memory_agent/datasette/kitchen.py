"""The kitchen board: today's orders as tickets, live, behind the dashboard's login.

``/-/kitchen`` is the page; it polls ``/-/kitchen.json`` every second, so a new order shows within
two seconds without a reload. Staff move a ticket new -> preparing -> ready -> collected and mark a
dish sold out for the rest of the day ("86" it) with ``POST /-/kitchen/ticket`` and
``POST /-/kitchen/sold-out`` (JSON bodies: a cross-site form cannot send one, so Datasette's CSRF
token is not needed). Every change is a row in the database with who made it and when
(``db.kitchen``); the agents refuse a sold-out dish from their next tool call on.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from datasette.utils.asgi import Forbidden, Response  # type: ignore[import-untyped]
from markupsafe import escape

from db import kitchen
from db.clock import utcnow_iso
from db.errors import NotFound
from memory_agent.datasette import localtime

PATH = "/-/kitchen"
POLL_MS = 1000


def _config(datasette: Any) -> dict[str, Any]:
    config = datasette.plugin_config("memory-agent")
    return config if isinstance(config, dict) else {}


async def _allowed(datasette: Any, request: Any) -> None:
    if not await datasette.permission_allowed(request.actor, "view-instance", default=True):
        raise Forbidden("log in first")


def _today(zone: str) -> str:
    return datetime.now(localtime.zone(zone)).date().isoformat()


def _hhmm(stored: object, zone: str) -> str | None:
    shown = localtime.local_time(stored, zone)
    return shown[-5:] if shown else None


async def board_data(datasette: Any, request: Any) -> Response:
    """Today's tickets, the dishes sold out today, the menu, in the restaurant's local time."""
    await _allowed(datasette, request)
    config = _config(datasette)
    zone = str(config.get("timezone") or "UTC")
    day = _today(zone)
    start, end = localtime.day_start_utc(day, zone), localtime.day_end_utc(day, zone)
    db = datasette.get_database()

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return kitchen.tickets(conn, start, end), kitchen.sold_out_today(conn, day)

    tickets, sold_out = await db.execute_fn(read)
    for ticket in tickets:
        ticket["placed_at"] = _hhmm(ticket["placed_at"], zone)
        ticket["pickup_at"] = _hhmm(ticket["pickup_at"], zone)
    return Response.json({"day": day, "tickets": tickets, "sold_out": sold_out, "menu": config.get("menu") or []})


async def _body(request: Any) -> dict[str, Any]:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ValueError("send JSON")
    body = json.loads((await request.post_body()) or b"{}")
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    return body


def _who(request: Any, body: dict[str, Any]) -> str:
    named = body.get("by")
    actor = (request.actor or {}).get("id") or "staff"
    return f"{named} ({actor})" if isinstance(named, str) and named.strip() else str(actor)


async def _write(datasette: Any, change: Any, *args: object) -> None:
    """``change(conn, *args)`` (a ``db.kitchen`` write, which commits its own transaction) on Datasette's
    one write connection."""
    await datasette.get_database().execute_write_fn(lambda conn: change(conn, *args), block=True)


async def move_ticket(datasette: Any, request: Any) -> Response:
    await _allowed(datasette, request)
    try:
        body = await _body(request)
        order_id, status = int(body.get("order") or 0), str(body.get("status"))
        by, now = _who(request, body), utcnow_iso()
        await _write(datasette, kitchen.move_ticket, order_id, status, by, now)
    except (ValueError, TypeError, NotFound) as exc:
        return Response.json({"ok": False, "error": str(exc)}, status=400)
    return Response.json({"ok": True})


async def sell_out(datasette: Any, request: Any) -> Response:
    await _allowed(datasette, request)
    config = _config(datasette)
    try:
        body = await _body(request)
        item = str(body.get("item"))
        if item not in {entry["id"] for entry in config.get("menu") or []}:
            raise ValueError(f"no dish {item!r} on the menu")
        day, by, now = _today(str(config.get("timezone") or "UTC")), _who(request, body), utcnow_iso()
        await _write(datasette, kitchen.mark_sold_out, item, day, by, now)
    except (ValueError, TypeError) as exc:
        return Response.json({"ok": False, "error": str(exc)}, status=400)
    return Response.json({"ok": True})


async def board_page(datasette: Any, request: Any) -> Response:
    await _allowed(datasette, request)
    title = escape(str(_config(datasette).get("restaurant") or "Kitchen"))
    return Response.html(PAGE.replace("{title}", str(title)).replace("{poll_ms}", str(POLL_MS)))


def routes() -> list[tuple[str, Any]]:
    return [
        (r"^/-/kitchen$", board_page),
        (r"^/-/kitchen\.json$", board_data),
        (r"^/-/kitchen/ticket$", move_ticket),
        (r"^/-/kitchen/sold-out$", sell_out),
    ]


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: kitchen board</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 1rem; background: #f4f1ea; }
header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
h1 { margin: 0; font-size: 1.5rem; }
#tickets { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: .8rem; margin-top: 1rem; }
.ticket { background: white; border-radius: .5rem; padding: .7rem; box-shadow: 0 1px 3px #0003; }
.ticket[data-status=preparing] { border-top: .4rem solid #e8a33d; }
.ticket[data-status=ready] { border-top: .4rem solid #3c9d4e; }
.ticket[data-status=new] { border-top: .4rem solid #3366cc; }
.ticket[data-status=collected] { opacity: .45; }
.number { font-size: 1.6rem; font-weight: bold; }
.allergy { background: #c00; color: white; font-weight: bold; font-size: 1.15rem; padding: .4rem;
  border-radius: .3rem; margin: .4rem 0; text-transform: uppercase; }
.items { padding-left: 1.1rem; margin: .4rem 0; } .mods { color: #a33; font-style: italic; }
.status { font-weight: bold; text-transform: uppercase; }
button { font-size: 1rem; padding: .35rem .7rem; margin: .15rem; cursor: pointer; }
#sold-out { margin-top: 1rem; } #sold-out .out { text-decoration: line-through; color: #c00; }
</style></head>
<body>
<header><h1>{title}: today's orders</h1>
<label>Your name <input id="by" maxlength="40" autocomplete="name"></label>
<span id="updated"></span></header>
<main id="tickets" aria-live="polite"></main>
<section id="sold-out"><h2>86 a dish (sold out for the rest of today)</h2><div id="menu"></div></section>
<script>
const NEXT = {new: 'preparing', preparing: 'ready', ready: 'collected'};
const by = document.getElementById('by');
by.value = localStorage.getItem('kitchen-by') || '';
by.addEventListener('change', () => localStorage.setItem('kitchen-by', by.value));
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child);  // text stays text
  return node;
}
async function send(path, body) {
  const response = await fetch(path, {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({...body, by: by.value}), credentials: 'same-origin'});
  if (!response.ok) alert((await response.json()).error || 'not saved');
  await refresh();
}
function ticket(t) {
  const card = el('article', {class: 'ticket', 'data-ticket': t.number, 'data-status': t.status});
  card.append(el('div', {class: 'number'}, '#' + t.number + (t.first_name ? ' ' + t.first_name : '')));
  card.append(el('div', {}, 'placed ' + (t.placed_at || '?') + (t.pickup_at ? ' \\u00b7 pickup ' + t.pickup_at : '')));
  if (t.allergy_note) card.append(el('div', {class: 'allergy', role: 'alert'}, '\\u26a0 ' + t.allergy_note));
  const list = el('ul', {class: 'items'});
  for (const item of t.items) {
    const line = el('li', {}, item.quantity + '\\u00d7 ' + item.name);
    if (item.modifications.length) line.append(' ', el('span', {class: 'mods'}, item.modifications.join(', ')));
    list.append(line);
  }
  card.append(list, el('div', {class: 'status'}, t.status));
  if (NEXT[t.status]) {
    const move = el('button', {'data-move': NEXT[t.status]}, '\\u2192 ' + NEXT[t.status]);
    move.onclick = () => send('/-/kitchen/ticket', {order: t.number, status: NEXT[t.status]});
    card.append(move);
  }
  return card;
}
async function refresh() {
  const response = await fetch('/-/kitchen.json', {credentials: 'same-origin'});
  if (!response.ok) { document.getElementById('updated').textContent = 'not updated: log in again'; return; }
  const data = await response.json();
  document.getElementById('tickets').replaceChildren(...data.tickets.map(ticket));
  const out = new Set(data.sold_out.map(s => s.menu_item));
  document.getElementById('menu').replaceChildren(...data.menu.map(dish => {
    const b = el('button', {'data-sold-out': dish.id, class: out.has(dish.id) ? 'out' : ''}, dish.name);
    b.disabled = out.has(dish.id);
    b.onclick = () => { if (confirm('86 ' + dish.name + ' for the rest of today?'))
      send('/-/kitchen/sold-out', {item: dish.id}); };
    return b;
  }));
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}
refresh();
setInterval(refresh, {poll_ms});
</script></body></html>
"""
