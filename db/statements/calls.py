"""A call's statements, written once: the caller lookup, a call's snapshot written (idempotently, keyed by
the call), and calls closed as abandoned.

The writes are plans (``db.statements.plan``): sqlite3 runs them on the writer thread inside the
transaction ``db.sqlite.connection.Writer`` opened; psycopg runs them pipelined (``db.postgres.repository``), where
only the statements whose answer decides what comes next wait for it. Statements update before they
insert where a row usually exists: PostgreSQL's INSERT ... ON CONFLICT takes a number from the
sequence at every write, and the update is as cheap on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam as param

from db.errors import CallerErased
from db.outbox import idempotency_key
from db.schema.models import (
    USAGE_FIELDS,
    CallerFact,
    CallerFactRow,
    CallRow,
    CallSnapshot,
    CustomerBase,
    CustomerMemory,
    CustomerRow,
    ErasureRow,
    Feedback,
    FeedbackRow,
    Message,
    MessageRow,
    Order,
    OrderItemRow,
    OrderLine,
    OrderRow,
    OutboxRow,
    PastOrder,
    StaffMessage,
    StaffMessageRow,
    columns,
    values,
)
from db.statements.plan import (
    Parts,
    Plan,
    Read,
    count,
    execute,
    later,
    many,
    number_lock,
    one,
)
from db.statements.sql import Dialect, greatest, json_rows, string_agg, table, upsert

CUSTOMERS = table(CustomerRow)
CALLS = table(CallRow)
ORDERS = table(OrderRow)
ITEMS = table(OrderItemRow)
FEEDBACK = table(FeedbackRow)
MESSAGES = table(MessageRow)
FACTS = table(CallerFactRow)
STAFF_MESSAGES = table(StaffMessageRow)
OUTBOX = table(OutboxRow)
ERASURES = table(ErasureRow)

_CUSTOMER = columns(CustomerBase)
_LINE = columns(OrderLine)
_FACT = columns(CallerFact)
_STAFF_MESSAGE = columns(StaffMessage)
MAX_FACTS = 60  # told to the agents at most; the memory text is cut to fit anyway

# -- the caller lookup --------------------------------------------------------------------------------

_c, _o, _i = CUSTOMERS.alias("c"), ORDERS.alias("o"), ITEMS.alias("i")
_f = (
    sa.select(FACTS)
    .where(FACTS.c.customer_id == _c.c.id, FACTS.c.superseded_at.is_(None), FACTS.c.value.is_not(None))
    .order_by(FACTS.c.kind, FACTS.c.stated_at.desc(), FACTS.c.id.desc())
    .limit(MAX_FACTS)
    .correlate(_c)
    .subquery("f")
)
_FACT_ORDER = (_f.c.kind, _f.c.stated_at.desc(), _f.c.id.desc())
_u = sa.select(ITEMS).where(ITEMS.c.order_id == _c.c.usual_order_id).order_by(ITEMS.c.position).correlate(_c)
_usual = _u.subquery("u")
_PROFILES = sa.select(
    _c.c.id,
    _c.c.participant_identity,
    *(_c.c[name] for name in _CUSTOMER),
    sa.select(json_rows(*(_f.c[name] for name in _FACT), order_by=_FACT_ORDER)).scalar_subquery().label("facts"),
    sa.select(json_rows(*(_usual.c[name] for name in _LINE), order_by=(_usual.c.position,)))
    .scalar_subquery()
    .label("usual"),
    _o.c.created_at,
    _o.c.total_cents,
    *(_i.c[name] for name in _LINE),
).select_from(_c.outerjoin(_o, _o.c.id == _c.c.last_order_id).outerjoin(_i, _i.c.order_id == _o.c.id))
# One profile, by its key.
RECALL = _PROFILES.where(_c.c.participant_identity == param("identity")).order_by(_i.c.position)
# Every profile that answers on one number (a household), oldest first.
HOUSEHOLD = _PROFILES.where(_c.c.household == param("household")).order_by(_c.c.id, _i.c.position)

# A customer's last placed orders, newest first, a row per line.
_placed = (
    sa.select(ORDERS.c.id, ORDERS.c.created_at, ORDERS.c.total_cents)
    .where(
        ORDERS.c.customer_id
        == sa.select(CUSTOMERS.c.id).where(CUSTOMERS.c.participant_identity == param("identity")).scalar_subquery(),
        ORDERS.c.status == "placed",
    )
    .order_by(ORDERS.c.created_at.desc(), ORDERS.c.id.desc())
    .limit(param("limit"))
    .subquery("o")
)
PAST_ORDERS = (
    sa.select(_placed.c.id, _placed.c.created_at, _placed.c.total_cents, *(ITEMS.c[name] for name in _LINE))
    .join_from(_placed, ITEMS, ITEMS.c.order_id == _placed.c.id)
    .order_by(_placed.c.created_at.desc(), _placed.c.id.desc(), ITEMS.c.position)
)

# One call at a glance: its order, items, feedback and transcript size.
_lines = (
    sa.select(ITEMS.c.quantity, ITEMS.c.name, ITEMS.c.position)
    .where(ITEMS.c.order_id == _o.c.id)
    .order_by(ITEMS.c.position)
    .correlate(_o)
    .subquery("i")
)
_k = CALLS.alias("k")
CALL_SUMMARY = (
    sa.select(
        _k.c.end_reason,
        _o.c.id.label("order_id"),
        _o.c.status,
        _o.c.total_cents,
        _o.c.kitchen_note,
        sa.select(string_agg(_lines.c.quantity.concat("x ").concat(_lines.c.name), ", ", order_by=_lines.c.position))
        .scalar_subquery()
        .label("items"),
        sa.select(FEEDBACK.c.rating).where(FEEDBACK.c.call_id == _k.c.id).scalar_subquery().label("rating"),
        sa.select(sa.func.count())
        .select_from(MESSAGES)
        .where(MESSAGES.c.call_id == _k.c.id)
        .scalar_subquery()
        .label("messages"),
    )
    .select_from(_k.outerjoin(_o, _o.c.call_id == _k.c.id))
    .where(_k.c.id == param("call_id"))
)


def line_from_row(row: Sequence[Any]) -> OrderLine:
    """An order line from its columns in ``columns(OrderLine)`` order."""
    return OrderLine.model_validate(dict(zip(_LINE, row, strict=True)))


def past_orders_from_rows(rows: Sequence[Sequence[Any]]) -> list[PastOrder]:
    """The orders in the rows of ``PAST_ORDERS``, in their order."""
    orders: dict[int, PastOrder] = {}
    for row in rows:
        order = orders.setdefault(row[0], PastOrder(created_at=row[1], total_cents=row[2], items=[]))
        order.items.append(line_from_row(row[3:]))
    return list(orders.values())


def profiles_from_rows(rows: Sequence[Sequence[Any]]) -> tuple[CustomerMemory, ...]:
    """The profiles in the rows of ``RECALL`` or ``HOUSEHOLD`` (a row per line of each last order)."""
    at = 4 + len(_CUSTOMER)
    profiles: list[CustomerMemory] = []
    by_customer: dict[int, list[Sequence[Any]]] = {}
    for row in rows:
        by_customer.setdefault(row[0], []).append(row)
    for customer_id, own in by_customer.items():
        first = own[0]
        lines = tuple(line_from_row(row[at + 2 :]) for row in own if row[at + 2] is not None)
        facts = tuple(
            CallerFact.model_validate(dict(zip(_FACT, fact, strict=True))) for fact in json.loads(first[at - 2] or "[]")
        )
        usual = tuple(line_from_row(line) for line in json.loads(first[at - 1] or "[]"))
        profiles.append(
            CustomerMemory(
                customer_id=customer_id,
                key=first[1],
                **dict(zip(_CUSTOMER, first[2 : at - 2], strict=True)),
                facts=facts,
                usual_items=usual,
                last_order_at=first[at],
                last_order_total_cents=first[at + 1],
                last_order_items=lines,
            )
        )
    return tuple(profiles)


# -- the customer's usual order ------------------------------------------------------------------------

# A customer's usual order: among their last 10 placed orders, the dishes (item, quantity, modifications)
# they ordered most often together, the latest on a tie; its newest instance. Kept on ``customers`` by
# the end-of-call write, so the caller lookup never scans a history.
_dish = (
    sa.select(
        ITEMS.c.menu_item.concat("*").concat(ITEMS.c.quantity).concat("*").concat(ITEMS.c.modifications).label("dish")
    )
    .where(ITEMS.c.order_id == _o.c.id)
    .order_by("dish")
    .correlate(_o)
    .subquery("d")
)
_recent = (
    sa.select(
        _o.c.id,
        _o.c.created_at,
        sa.select(string_agg(_dish.c.dish, "|", order_by=_dish.c.dish)).scalar_subquery().label("dishes"),
    )
    .where(_o.c.customer_id == CUSTOMERS.c.id, _o.c.status == "placed")
    .order_by(_o.c.created_at.desc(), _o.c.id.desc())
    .limit(10)
    .correlate(CUSTOMERS)
    .cte("recent", nesting=True)
)
USUAL_ORDER = (
    sa.select(_recent.c.id)
    .where(
        _recent.c.dishes
        == sa.select(_recent.c.dishes)
        .group_by(_recent.c.dishes)
        .order_by(sa.func.count().desc(), sa.func.max(_recent.c.created_at).desc())
        .limit(1)
        .scalar_subquery()
    )
    .order_by(_recent.c.created_at.desc(), _recent.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
SET_USUAL_ORDER = sa.update(CUSTOMERS).values(usual_order_id=USUAL_ORDER).where(CUSTOMERS.c.id == param("customer_id"))

# -- writing a snapshot --------------------------------------------------------------------------------

ERASED_SINCE = (
    sa.select(sa.func.count())
    .select_from(ERASURES)
    .where(
        ERASURES.c.erased_at >= param("since"),
        sa.or_(
            ERASURES.c.subject == param("identity"),
            sa.and_(ERASURES.c.subject == param("number"), ERASURES.c.scope == "number"),
        ),
    )
)
TOUCH_CUSTOMER = (
    sa.update(CUSTOMERS)
    .values(last_seen_at=greatest(CUSTOMERS.c.last_seen_at, param("seen_at")))
    .where(CUSTOMERS.c.participant_identity == param("identity"))
    .returning(CUSTOMERS.c.id)
)


def _add_customer(dialect: Dialect) -> sa.Insert:
    insert = upsert(CUSTOMERS, dialect).values(
        participant_identity=param("identity"),
        household=param("household"),
        created_at=param("seen_at"),
        last_seen_at=param("seen_at"),
    )
    return insert.on_conflict_do_update(
        index_elements=[CUSTOMERS.c.participant_identity],
        set_={"last_seen_at": greatest(CUSTOMERS.c.last_seen_at, insert.excluded.last_seen_at)},
    ).returning(CUSTOMERS.c.id)


CALL = (
    sa.select(CALLS.c.ended_at, CALLS.c.customer_id).where(CALLS.c.id == param("call_id")).with_for_update()
)  # locked on PostgreSQL; SQLite's writer holds the database's lock


def _add_call(dialect: Dialect) -> sa.Insert:
    names = ("id", "customer_id", "started_at", "caller_number", "owner_host", "owner_pid", "owner_started")
    insert = upsert(CALLS, dialect).values({name: param(name) for name in names})
    return insert.on_conflict_do_nothing(index_elements=[CALLS.c.id]).returning(CALLS.c.id)


COUNT_CALL = (
    sa.update(CUSTOMERS).values(call_count=CUSTOMERS.c.call_count + 1).where(CUSTOMERS.c.id == param("customer_id"))
)


def _linked(rows: sa.Table, key: sa.Column[Any]) -> sa.Update:
    """A call that began before its caller was known (an unverified caller) joins their profile."""
    return (
        sa.update(rows)
        .values(customer_id=param("customer_id"))
        .where(key == param("call_id"), rows.c.customer_id.is_(None))
    )


LINK_CALL = _linked(CALLS, CALLS.c.id)
LINK_FEEDBACK = _linked(FEEDBACK, FEEDBACK.c.call_id)
LINK_ORDER = _linked(ORDERS, ORDERS.c.call_id).returning(ORDERS.c.id, ORDERS.c.status, ORDERS.c.total_cents)

END_CALL = (
    sa.update(CALLS)
    .values(
        ended_at=sa.func.coalesce(CALLS.c.ended_at, param("ended_at")),
        end_reason=sa.func.coalesce(CALLS.c.end_reason, param("end_reason")),
    )
    .where(CALLS.c.id == param("call_id"))
)
LAST_SEEN = (
    sa.update(CUSTOMERS)
    .values(last_seen_at=greatest(CUSTOMERS.c.last_seen_at, param("seen_at")))
    .where(CUSTOMERS.c.id == param("customer_id"))
)
DROP_LATER_MESSAGES = sa.delete(MESSAGES).where(MESSAGES.c.call_id == param("call_id"), MESSAGES.c.seq > param("last"))


def write_call(
    snap: CallSnapshot, now: str, careful: bool, erased_since: Mapping[str, object] | None = None
) -> Plan[list[str]]:
    """Write what ``snap`` holds; returns the parts left out (``careful`` only).

    Safe to repeat and to replay late: a snapshot older than the call's end changes nothing,
    a placed order is final, and what it says of the customer never undoes a newer call's.
    With ``careful``, each part is written on its own, so one bad row never loses the rest.
    ``erased_since`` (the values of ``ERASED_SINCE``: since when, and the keyed hashes of the identity
    and the number): raises ``CallerErased``, writing nothing, if the caller was erased since the call
    began. It is read under the write lock (SQLite's, or the number's lock that PostgreSQL's calls from
    it share and an erasure takes alone), so an erasure is either seen here or made after this write,
    and erases it.
    """
    started = snap.started_at or snap.ended_at or now
    number = snap.household or snap.identity
    if number is not None:
        yield number_lock(number, shared=True)
    erased = None
    if erased_since is not None:
        erased = yield later(ERASED_SINCE, erased_since)
    # The customer's row updated and the call's locked, in this order, both sent before either answer is read.
    touched = None
    if snap.identity is not None:
        touched = yield later(TOUCH_CUSTOMER, {"seen_at": started, "identity": snap.identity})
    call = yield later(CALL, {"call_id": snap.call_id})
    customer_id = None
    if touched is not None:
        row = yield Read(touched)
        if row is None:
            new = {"identity": snap.identity, "household": number, "seen_at": started}
            row = yield one(_add_customer, new)
        customer_id = int(row[0])
    if erased is not None and (found := (yield Read(erased))) is not None and found[0]:
        raise CallerErased(f"call {snap.call_id}: its caller was erased after it began")
    existing = yield Read(call)
    new_call = False
    if existing is None:
        owner = {"owner_host": snap.owner_host, "owner_pid": snap.owner_pid, "owner_started": snap.owner_started}
        call_row = {"id": snap.call_id, "customer_id": customer_id, "started_at": started, "caller_number": number}
        if (yield one(_add_call, {**call_row, **owner})) is None:
            # another host's write of this call committed first: take its row
            existing = yield one(CALL, {"call_id": snap.call_id})
        else:
            new_call = True
            if customer_id is not None:
                yield execute(COUNT_CALL, {"customer_id": customer_id})
    if existing is not None:
        if existing[0] is not None and not snap.final:
            # Closed by another process (its owner looked dead), yet the call goes on: a placed order stands.
            if snap.order is not None and snap.order.status == "placed":
                yield from _write_order(snap.call_id, existing[1], snap.order, started, now, False)
            return []
        if existing[1] is None and customer_id is not None:
            yield from _link(snap.call_id, customer_id)
    at = snap.ended_at or now
    parts = Parts(careful)
    if snap.caller_name:
        yield from parts.part("name", _write_name(snap.call_id, customer_id, snap.caller_name, at))
    if snap.email and customer_id is not None:
        yield from parts.part("email", _write_email(customer_id, snap.email))
    if snap.order is not None:
        yield from parts.part("order", _write_order(snap.call_id, customer_id, snap.order, started, at, new_call))
    if snap.feedback is not None:
        yield from parts.part("feedback", _write_feedback(snap.call_id, customer_id, snap.feedback, at))
    if snap.facts and customer_id is not None:
        yield from parts.part("facts", _write_facts(snap.call_id, customer_id, snap.facts))
    if snap.staff_messages:
        yield from parts.part("staff messages", write_staff_messages(snap.call_id, customer_id, snap.staff_messages))
    numbered = list(enumerate(snap.messages, start=snap.first_seq))
    if careful:
        for seq, message in numbered:
            yield from parts.part(f"message {seq}", _write_messages(snap.call_id, [(seq, message)]))
    else:
        yield from _write_messages(snap.call_id, numbered)
    if snap.final:
        if snap.first_seq == 1:  # the complete transcript: drop rows the canonical history no longer has
            yield execute(DROP_LATER_MESSAGES, {"call_id": snap.call_id, "last": len(snap.messages)})
        yield execute(END_CALL, {"ended_at": snap.ended_at, "end_reason": snap.end_reason, "call_id": snap.call_id})
        if customer_id is not None:
            yield execute(LAST_SEEN, {"seen_at": snap.ended_at, "customer_id": customer_id})
    yield from write_service(snap)
    return parts.skipped


def _link(call_id: str, customer_id: int) -> Plan[None]:
    linked = {"customer_id": customer_id, "call_id": call_id}
    yield execute(LINK_CALL, linked)
    yield execute(COUNT_CALL, {"customer_id": customer_id})
    yield execute(LINK_FEEDBACK, linked)
    order = yield one(LINK_ORDER, linked)
    if order is not None and order[1] == "placed":
        yield from _count_placed(customer_id, order[0], order[2])


# -- the restaurant's side of a call: outcome, transfer, ready time, messages for the staff ------------

# Each is written once known and never undone by an older snapshot (a late replay keeps what stands);
# a snapshot that changes none of them writes nothing.
_SERVICE = {
    "restaurant_open": sa.func.coalesce(CALLS.c.restaurant_open, param("restaurant_open")),
    "outcome": sa.func.coalesce(CALLS.c.outcome, param("outcome")),
    "transfer_reason": sa.func.coalesce(param("transfer_reason"), CALLS.c.transfer_reason),
    "transfer_status": sa.func.coalesce(param("transfer_status"), CALLS.c.transfer_status),
}
SERVICE = (
    sa.update(CALLS)
    .values(_SERVICE)
    .where(
        CALLS.c.id == param("call_id"),
        sa.or_(*(CALLS.c[name].is_distinct_from(value) for name, value in _SERVICE.items())),
    )
)
# What a call used only grows: each counter is written where the snapshot's is higher, so a late replay of an
# older snapshot undoes nothing.
USAGE = (
    sa.update(CALLS)
    .values({name: greatest(CALLS.c[name], param(name)) for name in USAGE_FIELDS})
    .where(CALLS.c.id == param("call_id"), sa.or_(*(CALLS.c[name] < param(name) for name in USAGE_FIELDS)))
)
READY = (
    sa.update(ORDERS)
    .values(ready_at=param("ready_at"))
    .where(ORDERS.c.call_id == param("call_id"), ORDERS.c.status == "placed", ORDERS.c.ready_at.is_(None))
)


def write_service(snap: CallSnapshot) -> Plan[None]:
    """The call's outcome (final snapshots only), whether we were open, its transfer, and its order's ready time."""
    yield execute(
        SERVICE,
        {
            "restaurant_open": None if snap.restaurant_open is None else int(snap.restaurant_open),
            "outcome": snap.outcome if snap.final else None,
            "transfer_reason": snap.transfer_reason,
            "transfer_status": snap.transfer_status,
            "call_id": snap.call_id,
        },
    )
    usage = {name: getattr(snap, name) for name in USAGE_FIELDS}
    if any(usage.values()):
        yield execute(USAGE, {**usage, "call_id": snap.call_id})
    if snap.order is not None and snap.order.ready_at is not None:
        yield execute(READY, {"ready_at": snap.order.ready_at, "call_id": snap.call_id})


def _add_staff_message(dialect: Dialect) -> sa.Insert:
    names = ("call_id", "customer_id", "position", *_STAFF_MESSAGE)
    insert = upsert(STAFF_MESSAGES, dialect).values({name: param(name) for name in names})
    return insert.on_conflict_do_nothing(index_elements=[STAFF_MESSAGES.c.call_id, STAFF_MESSAGES.c.position])


def write_staff_messages(call_id: str, customer_id: int | None, messages: list[StaffMessage]) -> Plan[None]:
    """The messages a call took, by their place in the call: a message once taken stands."""
    rows = [
        {"call_id": call_id, "customer_id": customer_id, "position": n, **_named(m)}
        for n, m in enumerate(messages, start=1)
    ]
    yield many(_add_staff_message, rows)


def _named(row: CallerFact | Message | OrderLine | StaffMessage) -> dict[str, Any]:
    """The row's values by column name (lists as JSON text)."""
    return dict(zip(columns(type(row)), values(row), strict=True))


# What a call writes about its customer stands unless a newer call of theirs has begun since
# (a call replayed late from the spool must not undo what the caller told us after it).
def _unless_superseded(update: sa.Update) -> sa.Update:
    return update.where(CUSTOMERS.c.id == param("customer_id"), CUSTOMERS.c.last_seen_at <= param("at"))


CALLER_NAME = sa.update(CALLS).values(caller_name=param("name")).where(CALLS.c.id == param("call_id"))
CUSTOMER_NAME = _unless_superseded(sa.update(CUSTOMERS).values(name=param("name")))
CUSTOMER_EMAIL = sa.update(CUSTOMERS).values(email=param("email")).where(CUSTOMERS.c.id == param("customer_id"))


def _write_name(call_id: str, customer_id: int | None, name: str, at: str) -> Plan[None]:
    yield execute(CALLER_NAME, {"name": name, "call_id": call_id})
    if customer_id is not None:
        yield execute(CUSTOMER_NAME, {"name": name, "customer_id": customer_id, "at": at})


def _write_email(customer_id: int, email: str) -> Plan[None]:
    yield execute(CUSTOMER_EMAIL, {"email": email, "customer_id": customer_id})


# -- the order -----------------------------------------------------------------------------------------

_ORDER_FIELDS = ("status", "subtotal_cents", "tip_cents", "total_cents", "payment_method", "kitchen_note")
ORDER_OF_CALL = sa.select(ORDERS.c.id, ORDERS.c.status).where(ORDERS.c.call_id == param("call_id"))
UPDATE_ORDER = (
    sa.update(ORDERS)
    .values(
        {name: param(name) for name in (*_ORDER_FIELDS, "updated_at", "placed_at")}
        | {"customer_id": sa.func.coalesce(ORDERS.c.customer_id, param("customer_id"))}
    )
    .where(ORDERS.c.id == param("order_id"))
    .returning(ORDERS.c.id)
)


def _add_order(dialect: Dialect) -> sa.Insert:
    names = ("call_id", "customer_id", *_ORDER_FIELDS, "created_at", "updated_at", "placed_at")
    insert = upsert(ORDERS, dialect).values({name: param(name) for name in names})
    replaced = {name: insert.excluded[name] for name in (*_ORDER_FIELDS, "updated_at", "placed_at")}
    return insert.on_conflict_do_update(
        index_elements=[ORDERS.c.call_id],
        set_={**replaced, "customer_id": sa.func.coalesce(ORDERS.c.customer_id, insert.excluded.customer_id)},
    ).returning(ORDERS.c.id)


# An order's lines by their place in it: a line that did not change is not written again (it keeps its row),
# and the lines past the order's last are dropped.
DROP_LINES_AFTER = sa.delete(ITEMS).where(ITEMS.c.order_id == param("order_id"), ITEMS.c.position > param("count"))


def _put_line(dialect: Dialect) -> sa.Insert:
    insert = upsert(ITEMS, dialect).values({name: param(name) for name in ("order_id", "position", *_LINE)})
    return insert.on_conflict_do_update(
        index_elements=[ITEMS.c.order_id, ITEMS.c.position],
        set_={name: insert.excluded[name] for name in _LINE},
        where=sa.or_(*(ITEMS.c[name].is_distinct_from(insert.excluded[name]) for name in _LINE)),
    )


def _enqueue(dialect: Dialect) -> sa.Insert:
    """A placed order queued for the till (``db.outbox``), in the transaction that places it."""
    insert = upsert(OUTBOX, dialect).values(
        order_id=param("order_id"), idempotency_key=param("key"), created_at=param("at")
    )
    return insert.on_conflict_do_nothing(index_elements=[OUTBOX.c.order_id])


def _write_order(
    call_id: str, customer_id: int | None, order: Order, created_at: str, at: str, new_call: bool
) -> Plan[None]:
    """The order as it is at time ``at``; a new row is dated ``created_at``; a placed order is final.

    ``new_call``: this transaction inserted the call, so no order of it can exist yet.
    """
    existing = None if new_call else (yield one(ORDER_OF_CALL, {"call_id": call_id}))
    if existing is not None and existing[1] == "placed":
        return
    if existing is None and not order.items:
        return
    fields = {name: getattr(order, name) for name in _ORDER_FIELDS}
    fields |= {"updated_at": at, "placed_at": at if order.status == "placed" else None, "customer_id": customer_id}
    if existing is not None:
        row = yield one(UPDATE_ORDER, {**fields, "order_id": existing[0]})
    else:
        row = yield one(_add_order, {**fields, "call_id": call_id, "created_at": created_at})
    order_id = int(row[0])
    if existing is not None:
        yield execute(DROP_LINES_AFTER, {"order_id": order_id, "count": len(order.items)})
    lines = [{"order_id": order_id, "position": n, **_named(line)} for n, line in enumerate(order.items, start=1)]
    yield many(_put_line, lines)
    if order.status == "placed":  # queued for the till in the transaction that places it
        yield execute(_enqueue, {"order_id": order_id, "key": idempotency_key(order_id, call_id), "at": at})
    if order.status == "placed" and customer_id is not None:
        yield from _count_placed(customer_id, order_id, order.total_cents)


_last, _this = ORDERS.alias("last"), ORDERS.alias("this")
# A call replayed late from the spool must not displace a newer last order.
COUNT_PLACED = (
    sa.update(CUSTOMERS)
    .values(
        order_count=CUSTOMERS.c.order_count + 1,
        lifetime_spend_cents=CUSTOMERS.c.lifetime_spend_cents + param("total_cents"),
        last_order_id=sa.case(
            (
                sa.or_(
                    CUSTOMERS.c.last_order_id.is_(None),
                    sa.select(_last.c.created_at).where(_last.c.id == CUSTOMERS.c.last_order_id).scalar_subquery()
                    <= sa.select(_this.c.created_at).where(_this.c.id == param("order_id")).scalar_subquery(),
                ),
                param("order_id"),
            ),
            else_=CUSTOMERS.c.last_order_id,
        ),
    )
    .where(CUSTOMERS.c.id == param("customer_id"))
)


def _count_placed(customer_id: int, order_id: int, total_cents: int) -> Plan[None]:
    """Keep the customer's aggregates, so the caller lookup never scans their history."""
    yield execute(COUNT_PLACED, {"total_cents": total_cents, "order_id": order_id, "customer_id": customer_id})
    yield execute(SET_USUAL_ORDER, {"customer_id": customer_id})


# -- what the caller told us about themselves ----------------------------------------------------------

_FACT_KEY = ("call_id", "kind", "topic")
UPDATE_FACT = (
    sa.update(FACTS)
    .values(value=param("value"), stated_at=param("stated_at"), customer_id=param("customer_id"))
    .where(*(FACTS.c[name] == param(name) for name in _FACT_KEY))
    .returning(FACTS.c.id)
)


def _add_fact(dialect: Dialect) -> sa.Insert:
    names = ("customer_id", *_FACT_KEY, "value", "stated_at")
    insert = upsert(FACTS, dialect).values({name: param(name) for name in names})
    replaced = {name: insert.excluded[name] for name in ("value", "stated_at", "customer_id")}
    return insert.on_conflict_do_update(index_elements=[FACTS.c[name] for name in _FACT_KEY], set_=replaced).returning(
        FACTS.c.id
    )


def _same_topic(rows: Any) -> sa.ColumnElement[bool]:
    return sa.and_(
        rows.c.customer_id == param("customer_id"),
        rows.c.kind == param("kind"),
        rows.c.topic == param("topic"),
        rows.c.id != param("own"),
    )


_later = FACTS.alias("later")
SUPERSEDE_EARLIER = (
    sa.update(FACTS)
    .values(superseded_at=param("stated_at"))
    .where(_same_topic(FACTS), FACTS.c.superseded_at.is_(None), FACTS.c.stated_at <= param("stated_at"))
)
# a later statement, written first (a replay from the spool), stands
SUPERSEDED_BY_LATER = (
    sa.update(FACTS)
    .values(
        superseded_at=sa.select(sa.func.min(_later.c.stated_at))
        .where(_same_topic(_later), _later.c.stated_at > param("stated_at"))
        .scalar_subquery()
    )
    .where(FACTS.c.id == param("own"))
)


def _write_facts(call_id: str, customer_id: int, facts: list[CallerFact]) -> Plan[None]:
    """The call's word on each topic supersedes what was said before it; what was said after it stands."""
    for fact in facts:
        said = {"customer_id": customer_id, "call_id": call_id, **_named(fact)}
        row = yield one(UPDATE_FACT, said)
        if row is None:
            row = yield one(_add_fact, said)
        same = {"customer_id": customer_id, "kind": fact.kind, "topic": fact.topic, "own": row[0]}
        yield execute(SUPERSEDE_EARLIER, {**same, "stated_at": fact.stated_at})
        yield execute(SUPERSEDED_BY_LATER, {**same, "stated_at": fact.stated_at})


# -- feedback and the transcript -----------------------------------------------------------------------

UPDATE_FEEDBACK = (
    sa.update(FEEDBACK)
    .values(
        rating=param("rating"),
        comment=param("comment"),
        customer_id=sa.func.coalesce(FEEDBACK.c.customer_id, param("customer_id")),
    )
    .where(FEEDBACK.c.call_id == param("call_id"))
)


def _add_feedback(dialect: Dialect) -> sa.Insert:
    """The call's feedback where ``UPDATE_FEEDBACK`` found none: no answer to wait for, no number taken."""
    given = sa.select(
        sa.cast(param("call_id"), sa.Text),
        sa.cast(param("customer_id"), sa.BigInteger),
        sa.cast(param("rating"), sa.BigInteger),
        sa.cast(param("comment"), sa.Text),
        sa.cast(param("at"), sa.Text),
    ).where(~sa.exists().where(FEEDBACK.c.call_id == param("call_id")))
    names = ("call_id", "customer_id", "rating", "comment", "created_at")
    insert = upsert(FEEDBACK, dialect).from_select(names, given)
    return insert.on_conflict_do_update(
        index_elements=[FEEDBACK.c.call_id],
        set_={
            "rating": insert.excluded.rating,
            "comment": insert.excluded.comment,
            "customer_id": sa.func.coalesce(FEEDBACK.c.customer_id, insert.excluded.customer_id),
        },
    )


CUSTOMER_FEEDBACK = _unless_superseded(
    sa.update(CUSTOMERS).values(last_rating=param("rating"), last_feedback_comment=param("comment"))
)


def _write_feedback(call_id: str, customer_id: int | None, feedback: Feedback, at: str) -> Plan[None]:
    given = {"call_id": call_id, "customer_id": customer_id, "rating": feedback.rating, "comment": feedback.comment}
    yield execute(UPDATE_FEEDBACK, given)
    yield execute(_add_feedback, {**given, "at": at})
    if customer_id is not None:
        yield execute(CUSTOMER_FEEDBACK, {**given, "at": at})


def _add_message(dialect: Dialect) -> sa.Insert:
    names = ("call_id", "seq", "role", "agent", "content", "created_at")
    insert = upsert(MESSAGES, dialect).values({name: param(name) for name in names})
    return insert.on_conflict_do_update(
        index_elements=[MESSAGES.c.call_id, MESSAGES.c.seq],
        set_={name: insert.excluded[name] for name in ("role", "agent", "content", "created_at")},
        where=sa.or_(
            MESSAGES.c.content.is_distinct_from(insert.excluded.content),
            MESSAGES.c.role.is_distinct_from(insert.excluded.role),
        ),
    )


def _write_messages(call_id: str, numbered: list[tuple[int, Message]]) -> Plan[None]:
    rows = [
        {
            "call_id": call_id,
            "seq": seq,
            "role": m.role,
            "agent": m.agent,
            "content": m.content,
            "created_at": m.created_at,
        }
        for seq, m in numbered
    ]
    yield many(_add_message, rows)


# -- closing calls left by dead processes --------------------------------------------------------------

CLOSE_CALL = (
    sa.update(CALLS)
    .values(ended_at=param("ended_at"), end_reason=param("reason"))
    .where(CALLS.c.id == param("call_id"), CALLS.c.ended_at.is_(None))
)
ABANDON_ORDER = (
    sa.update(ORDERS)
    .values(status="abandoned", updated_at=param("now"))
    .where(ORDERS.c.call_id == param("call_id"), ORDERS.c.status == "in_progress")
)


def close_calls(found: Sequence[Any], spooled: set[str], now: str) -> Plan[list[str]]:
    """Close the stale calls (``db.stale.StaleCall``) that are not waiting in the spool (``spooled``, read
    under the write lock: a replay commits before it forgets a spooled call) to be replayed."""
    closed = []
    for call in found:
        if call.call_id in spooled:
            continue
        if (yield count(CLOSE_CALL, {"ended_at": call.ended_at, "reason": call.reason, "call_id": call.call_id})):
            closed.append(call.call_id)
            yield execute(ABANDON_ORDER, {"now": now, "call_id": call.call_id})
    return closed
