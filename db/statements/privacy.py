"""A caller's personal data, written once for both backends: erased on request (``forget``), handed over on
request (``export_caller``), and not kept past its time (``purge``).

Each is a plan (``db.statements.plan``): it yields its statements and decides on their answers, so one
definition serves SQLite's writer thread and PostgreSQL's connection. What only one database has stays with
it: SQLite merges its full-text indexes afterwards (``db.privacy``); PostgreSQL takes the numbers' locks
first and rewrites the tables' pages afterwards (``db.postgres.privacy``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, exists, func, insert, null, or_, select, update
from sqlalchemy.sql.elements import BindParameter

from db.schema.models import (
    CallerFactRow,
    CallRow,
    CustomerRow,
    ErasureRow,
    FeedbackRow,
    MessageRow,
    OrderItemRow,
    OrderLine,
    OrderRow,
    StaffMessageRow,
    columns,
    name_key,
)
from db.statements.plan import Plan, count, every, execute, one
from db.statements.sql import in_list, table, words

customers, calls, orders, order_items = table(CustomerRow), table(CallRow), table(OrderRow), table(OrderItemRow)
feedback, messages, caller_facts = table(FeedbackRow), table(MessageRow), table(CallerFactRow)
staff_messages, erasures = table(StaffMessageRow), table(ErasureRow)

# Every table that holds a caller's rows, in an order that deletes children first.
ERASED = ("staff_messages", "caller_facts", "messages", "order_items", "feedback", "orders", "calls", "customers")


# -- which profiles a request names --------------------------------------------------------------------

_PROFILE_COLUMNS = (customers.c.id, customers.c.name, customers.c.participant_identity)
_KEY: BindParameter[Any] = bindparam("key")
PROFILES_ON_NUMBER = select(*_PROFILE_COLUMNS).where(
    or_(customers.c.household == _KEY, customers.c.participant_identity == _KEY)
)
PROFILE = select(*_PROFILE_COLUMNS).where(customers.c.participant_identity == _KEY)


def select_profiles(identity: str, name: str | None, exact: bool = False) -> Plan[list[tuple[int, str | None, str]]]:
    """The profiles a request names: every profile on a number (or identity), the one person ``name``
    of them, or (``exact``) the one profile keyed ``identity``."""
    found = yield every(PROFILE if exact else PROFILES_ON_NUMBER, {"key": identity})
    if name is not None:
        wanted = name_key(name)
        found = [row for row in found if name_key(row[1]) == wanted]
    return [(int(row[0]), row[1], str(row[2])) for row in found]


_HOUSEHOLDS = select(customers.c.household).distinct().where(customers.c.household.is_not(None))
# The numbers whose profiles a request names (``key``): each a household the erasure may take whole.
HOUSEHOLDS_ON_NUMBER = _HOUSEHOLDS.where(or_(customers.c.household == _KEY, customers.c.participant_identity == _KEY))
HOUSEHOLD_OF_PROFILE = _HOUSEHOLDS.where(customers.c.participant_identity == _KEY)


# -- what goes with them -----------------------------------------------------------------------------

_NUMBER: BindParameter[Any] = bindparam("number")
_THEIR_CALLS = select(calls.c.id).where(
    or_(in_list(calls.c.customer_id, "ids", numbers=True), calls.c.caller_number == _NUMBER)
)


def _theirs(rows: Any) -> ColumnElement[bool]:
    return or_(in_list(rows.c.customer_id, "ids", numbers=True), rows.c.call_id.in_(_THEIR_CALLS))


# The rows of the profiles ``ids`` (a JSON list) and of the calls from ``number`` (None: no calls but theirs).
_SCOPES: dict[str, tuple[Any, ColumnElement[bool]]] = {
    "customers": (customers, in_list(customers.c.id, "ids", numbers=True)),
    "calls": (calls, or_(in_list(calls.c.customer_id, "ids", numbers=True), calls.c.caller_number == _NUMBER)),
    "orders": (orders, _theirs(orders)),
    "order_items": (order_items, order_items.c.order_id.in_(select(orders.c.id).where(_theirs(orders)))),
    "feedback": (feedback, _theirs(feedback)),
    "messages": (messages, messages.c.call_id.in_(_THEIR_CALLS)),
    "caller_facts": (caller_facts, _theirs(caller_facts)),
    "staff_messages": (staff_messages, _theirs(staff_messages)),
}
TABLES = tuple(_SCOPES)
COUNTS = {name: select(func.count()).select_from(rows).where(where) for name, (rows, where) in _SCOPES.items()}
DELETES = {name: delete(rows).where(where) for name, (rows, where) in _SCOPES.items()}
UNLINK_ORDERS = (
    update(customers)
    .where(in_list(customers.c.id, "ids", numbers=True))
    .values(last_order_id=null(), usual_order_id=null())
)
AUDIT = insert(erasures).values(
    erased_at=bindparam("erased_at"), subject=bindparam("subject"), counts=bindparam("counts"), scope=bindparam("scope")
)


def forget(
    identity: str,
    name: str | None,
    exact: bool,
    dry_run: bool,
    subject: Callable[[str], str],
    now: str,
    on_call: bool = False,
) -> Plan[dict[str, Any]]:
    """Delete the profiles (and all that is theirs); returns the counts and the profiles' keys and names.

    Without ``name`` or ``exact``, everything on the number goes, its calls where no name was given
    included. Each erasure leaves an audit row (``subject`` hashes the key), which calls still running
    read before they write (``db.statements.calls.ERASED_SINCE``): one for the number, or one per person erased.
    An erasure the caller asked for on a call (``on_call``) says so in its row (``audit_counts``): the
    call's outcome, which goes with the call, is still counted on the dashboard.
    """
    profiles = yield from select_profiles(identity, name, exact)
    parts: list[tuple[str, list[int], str | None]]  # whose key, their profiles, the number whose calls go too
    if name is not None:
        parts = [(key, [customer_id], None) for customer_id, _, key in profiles]
    else:
        parts = [(identity, [p[0] for p in profiles], None if exact else identity)]
    total = dict.fromkeys(TABLES, 0)
    for key, ids, number in parts:
        counts = yield from _erase(ids, number, dry_run)
        if not dry_run:
            yield execute(
                AUDIT,
                {
                    "erased_at": now,
                    "subject": subject(key),
                    "counts": audit_counts(counts, on_call),
                    "scope": "profile" if number is None else "number",
                },
            )
        for table_name, found in counts.items():
            total[table_name] += found
    return {"counts": total, "keys": [p[2] for p in profiles], "names": [p[1] for p in profiles if p[1]]}


def _erase(ids: list[int], number: str | None, dry_run: bool) -> Plan[dict[str, int]]:
    """Count, and unless ``dry_run`` delete, the rows of the profiles ``ids`` and of the calls from ``number``."""
    values = {"ids": json.dumps(ids), "number": number}
    counts: dict[str, int] = {}
    for table_name, statement in COUNTS.items():
        row = yield one(statement, values)
        counts[table_name] = int(row[0]) if row else 0
    if not dry_run and any(counts.values()):
        yield execute(UNLINK_ORDERS, values)
        for table_name in ERASED:
            yield execute(DELETES[table_name], values)
    return counts


# The key of an audit row's counts that marks an erasure a caller asked for on a call: the call ended
# in an erasure (its outcome "erased", deleted with it). Nothing personal: a flag beside the counts.
ASKED_ON_CALL = "asked_on_call"


def audit_counts(counts: dict[str, int], on_call: bool) -> str:
    """An audit row's ``counts``: the rows erased per table, and whether the caller asked on a call."""
    return json.dumps({**counts, ASKED_ON_CALL: 1} if on_call else counts, sort_keys=True)


# -- retention -----------------------------------------------------------------------------------------

_CUTOFF: BindParameter[Any] = bindparam("cutoff")
OLD_TRANSCRIPTS = (
    select(calls.c.id)
    .where(
        func.coalesce(calls.c.ended_at, calls.c.started_at) < _CUTOFF,
        calls.c.id.in_(select(messages.c.call_id)),
    )
    .limit(bindparam("batch"))
)
DELETE_TRANSCRIPTS = delete(messages).where(in_list(messages.c.call_id, "calls"))
CLEAR_COMMENTS = (
    update(feedback).where(feedback.c.created_at < _CUTOFF, feedback.c.comment != words("")).values(comment=words(""))
)
_LATER = feedback.alias("f")
CLEAR_LAST_COMMENTS = (
    update(customers)
    .where(
        customers.c.last_feedback_comment.is_not(None),
        ~exists().where(
            _LATER.c.customer_id == customers.c.id,
            _LATER.c.created_at >= _CUTOFF,
            _LATER.c.comment != words(""),
        ),
    )
    .values(last_feedback_comment=null())
)


def purge(cutoff: str, batch: int) -> Plan[dict[str, int]]:
    """Remove up to ``batch`` calls' transcripts, and the free-text comments, older than ``cutoff``."""
    chosen = [row[0] for row in (yield every(OLD_TRANSCRIPTS, {"cutoff": cutoff, "batch": batch}))]
    removed = yield count(DELETE_TRANSCRIPTS, {"calls": json.dumps(chosen)})
    comments = yield count(CLEAR_COMMENTS, {"cutoff": cutoff})
    yield execute(CLEAR_LAST_COMMENTS, {"cutoff": cutoff})
    return {"calls": len(chosen), "messages": removed, "comments": comments}


# -- an access request -----------------------------------------------------------------------------------

# What an access request shows: every column that is the caller's (not Datasette's label of a profile, not
# which process owned a call).
_WHOSE: BindParameter[Any] = bindparam("whose")
PROFILES = (
    select(*(c for c in customers.columns if c.key != "label"))
    .where(or_(customers.c.household == _KEY, customers.c.participant_identity == _KEY))
    .order_by(customers.c.id)
)
_CALL = select(*(c for c in calls.columns if c.key not in ("owner_host", "owner_pid", "owner_started")))
CALLS_OF_PROFILE = _CALL.where(calls.c.customer_id == _WHOSE).order_by(calls.c.started_at)
CALLS_WITHOUT_PROFILE = _CALL.where(calls.c.caller_number == _KEY, calls.c.customer_id.is_(None)).order_by(
    calls.c.started_at
)


def _columns(rows: Any, names: str) -> Select[Any]:
    """The named columns of ``rows``: ``_columns(messages, "seq role")``."""
    return select(*(rows.c[name] for name in names.split()))


FACTS = (
    _columns(caller_facts, "kind topic value stated_at superseded_at call_id")
    .where(caller_facts.c.customer_id == _WHOSE)
    .order_by(caller_facts.c.kind, caller_facts.c.stated_at)
)
STAFF_MESSAGES = (
    _columns(staff_messages, "request callback_number reason created_at call_id")
    .where(staff_messages.c.customer_id == _WHOSE)
    .order_by(staff_messages.c.created_at, staff_messages.c.id)
)
_OF_CALL: BindParameter[Any] = bindparam("call_id")
ORDER_OF_CALL = select(orders).where(orders.c.call_id == _OF_CALL)
ORDER_LINES = (
    _columns(order_items, " ".join(("position", *columns(OrderLine))))
    .where(order_items.c.order_id == bindparam("order_id"))
    .order_by(order_items.c.position)
)
FEEDBACK_OF_CALL = _columns(feedback, "rating comment created_at").where(feedback.c.call_id == _OF_CALL)
TRANSCRIPT = (
    _columns(messages, "seq role agent content created_at")
    .where(messages.c.call_id == _OF_CALL)
    .order_by(messages.c.seq)
)


def _rows(statement: Select[Any], values: dict[str, Any]) -> Plan[list[dict[str, Any]]]:
    """The rows of ``statement`` as dicts of its columns."""
    names = list(statement.selected_columns.keys())
    return [dict(zip(names, row, strict=True)) for row in (yield every(statement, values))]


def export_caller(identity: str) -> Plan[dict[str, Any]]:
    """Everything held about the profiles on a number (or identity), and its calls where no name was given,
    as plain data."""
    profiles = yield from _rows(PROFILES, {"key": identity})
    for profile in profiles:
        whose = {"whose": profile["id"]}
        profile["calls"] = yield from _held_calls((yield from _rows(CALLS_OF_PROFILE, whose)))
        profile["facts"] = yield from _rows(FACTS, whose)
        profile["staff_messages"] = yield from _rows(STAFF_MESSAGES, whose)
    unnamed = yield from _rows(CALLS_WITHOUT_PROFILE, {"key": identity})
    return {
        "identity": identity,
        "profiles": profiles,
        "calls_without_profile": (yield from _held_calls(unnamed)),
    }


def _held_calls(found: list[dict[str, Any]]) -> Plan[list[dict[str, Any]]]:
    held = []
    for call in found:
        held.append((yield from _held_call(call)))
    return held


def _held_call(call: dict[str, Any]) -> Plan[dict[str, Any]]:
    """One call of an access request: its order with the lines, its feedback and its transcript."""
    which = {"call_id": call["id"]}
    order = yield from _rows(ORDER_OF_CALL, which)
    if order:
        call["order"] = order[0]
        call["order"]["items"] = yield from _rows(ORDER_LINES, {"order_id": order[0]["id"]})
        for item in call["order"]["items"]:
            item["modifications"] = json.loads(item["modifications"])
            item["accepted_allergens"] = json.loads(item["accepted_allergens"])
    found = yield from _rows(FEEDBACK_OF_CALL, which)
    call["feedback"] = found[0] if found else None
    call["transcript"] = yield from _rows(TRANSCRIPT, which)
    return call
