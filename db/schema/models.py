"""One definition of each row: customer, call, order, order line, feedback, message.

Each row has a base model with its fields and their validation, which the application passes
around (the agents' state, the journal's snapshots, the spool, the caller lookup), and a table
model that inherits it and adds the keys. The table models are the schema: every column with its
type, nullability, default and checks, every key and index, on SQLite and PostgreSQL (what differs
is one named construct each: ``TEXT``, ``INTEGER``, ``Flag``, ``json_text``, ``FULL_TEXT``,
``only_on``). The revisions in ``db/schema/alembic`` bring a database to them, and a test compares the
two on both databases. The SQL in ``db.sqlite.calls`` takes its column lists from these models, so a new
field is declared once. Totals are computed here and nowhere else.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, computed_field, field_validator, model_validator
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Dialect,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """Text that UTF-8 can store: lone surrogates (from invalid input bytes) become U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _encodable_input(value: Any) -> Any:
    return encodable(value) if isinstance(value, str) else value


# Text from a caller or the LLM: always storable, whatever bytes came in.
CleanText = Annotated[str, BeforeValidator(_encodable_input)]

OrderStatus = Literal["in_progress", "placed", "abandoned"]

# How a call ended for the restaurant.
CallOutcome = Literal[
    "order_placed", "order_for_later", "transferred", "message_taken", "no_order", "hung_up", "erased"
]
TransferStatus = Literal["transferred", "failed", "unavailable"]

MAX_QUANTITY = 20

# customers.label (migration 2): what Datasette shows for a link to a customer.
CUSTOMER_LABEL_SQL = (
    "CASE WHEN name IS NULL OR name = '' THEN participant_identity ELSE name || ' (' || participant_identity || ')' END"
)


# -- the schema's words for both databases ----------------------------------------------------

# Text compares byte by byte on both (SQLite's BINARY, PostgreSQL's "C"); integers are 64-bit on both.
TEXT = Text().with_variant(Text(collation="C"), "postgresql")
INTEGER = Integer().with_variant(BigInteger(), "postgresql")


class Flag(TypeDecorator[bool]):
    """A yes or no stored as 0 or 1, as SQLite stores booleans, on both databases."""

    impl = Integer
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(BigInteger() if dialect.name == "postgresql" else Integer())

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        return None if value is None else bool(value)


def key() -> Any:
    """An integer primary key: SQLite's rowid, PostgreSQL's identity column."""
    return Field(default=None, sa_column=Column(INTEGER, Identity(), primary_key=True))


def server(value: int | str) -> dict[str, Any]:
    """The column's default in the database too (rows written with SQL alone, and earlier rows)."""
    return {"server_default": text(str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'")}


def one_of(column: str, values: Any) -> CheckConstraint:
    """A text column that holds one of ``values`` (a tuple, or a ``Literal`` type's)."""
    words = get_args(values) or values
    return CheckConstraint(f"{column} IN ({', '.join(repr(w) if isinstance(w, str) else str(w) for w in words)})")


def json_text(column: str) -> tuple[CheckConstraint, CheckConstraint]:
    """A text column that holds JSON: the same check in each database's words."""
    return (
        CheckConstraint(f"json_valid({column})").ddl_if(dialect="sqlite"),
        CheckConstraint(f"{column}::json IS NOT NULL").ddl_if(dialect="postgresql"),
    )


def partial(name: str, *columns: str, where: str) -> Index:
    """An index of the rows ``where`` holds only (the same condition on both databases)."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


def only_on(dialect: str) -> dict[str, Any]:
    """``info`` of a table or index that only ``dialect`` has (see ``db.schema.alembic.schema_objects``)."""
    return {"dialects": (dialect,)}


# The search configuration: English stems, as SQLite's porter tokenizer.
SEARCH_CONFIG = "english"


@dataclass(frozen=True)
class FullTextSearch:
    """Words searched in a text column: on SQLite an FTS5 table ``<table>_fts`` kept by triggers (Alembic cannot
    compare it: ``db.schema.alembic`` creates again a trigger a revision dropped with its table), on PostgreSQL a GIN
    index on ``to_tsvector`` of the column itself."""

    table: str
    column: str

    @property
    def vector(self) -> str:
        return f"to_tsvector('{SEARCH_CONFIG}', {self.column})"

    def sqlite_triggers(self) -> dict[str, str]:
        """The triggers that keep the FTS5 table in step with the table, by name."""
        table, column, fts = self.table, self.column, f"{self.table}_fts"
        add = f"INSERT INTO {fts} (rowid, {column}) VALUES (new.id, new.{column});"
        remove = f"INSERT INTO {fts} ({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column});"
        return {
            f"{table}_ai": f"CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN\n    {add}\nEND",
            f"{table}_ad": f"CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN\n    {remove}\nEND",
            f"{table}_au": f"CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN\n    {remove}\n    {add}\nEND",
        }

    def postgres_index(self) -> Index:
        index = Index(f"ix_{self.table}_search", text(self.vector), postgresql_using="gin", info=only_on("postgresql"))
        return index.ddl_if(dialect="postgresql")


FULL_TEXT = (FullTextSearch("messages", "content"), FullTextSearch("feedback", "comment"))


@compiles(Computed, "postgresql")
def _stored(computed: Computed, compiler: Any, **kw: Any) -> str:
    """A generated column: computed when read on SQLite (VIRTUAL), when written on PostgreSQL (its only kind)."""
    expression = compiler.sql_compiler.process(computed.sqltext, include_table=False, literal_binds=True)
    return f"GENERATED ALWAYS AS ({expression}) STORED"


MESSAGES_SEARCH = FULL_TEXT[0].vector


def columns(model: type[SQLModel]) -> tuple[str, ...]:
    """The columns a base model holds, in declaration order (computed fields excluded)."""
    return tuple(model.model_fields)


def values(row: SQLModel) -> tuple[Any, ...]:
    """The row's values for ``columns(type(row))``; lists are stored as JSON text."""
    return tuple(
        json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
        for value in (getattr(row, name) for name in type(row).model_fields)
    )


# -- order line -----------------------------------------------------------------------------


class OrderLine(SQLModel):
    """One line of an order, priced from the menu: in the agents' state, the database and memory."""

    model_config = ConfigDict(validate_assignment=True)  # type: ignore[assignment]

    menu_item: str = Field(min_length=1, max_length=64)
    name: CleanText = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price_cents: int = Field(ge=0)
    modifications: list[CleanText] = Field(default_factory=list, max_length=10)
    # Allergens of the caller's that this dish contains, ordered anyway once the caller was told.
    accepted_allergens: list[str] = Field(default_factory=list, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _earlier_field_name(cls, data: Any) -> Any:
        # Spool lines written before the rename call the menu item's id "menu_item_id".
        if isinstance(data, dict) and "menu_item_id" in data and "menu_item" not in data:
            data = {**data, "menu_item": data["menu_item_id"]}
        return data

    @field_validator("modifications", "accepted_allergens", mode="before")
    @classmethod
    def _from_json_text(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity

    def describe(self) -> str:
        text = f"{self.quantity}x {self.name}"
        return text + (f" ({', '.join(self.modifications)})" if self.modifications else "")


class OrderItemRow(OrderLine, table=True):
    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "position"),
        CheckConstraint(f"quantity BETWEEN 1 AND {MAX_QUANTITY}"),
        CheckConstraint("unit_price_cents >= 0"),
        *json_text("modifications"),
        *json_text("accepted_allergens"),
    )

    id: int | None = key()
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE")
    position: int
    # JSON lists, as text (``values`` writes them so)
    modifications: list[str] = Field(default_factory=list, sa_type=Text, sa_column_kwargs=server("[]"))
    accepted_allergens: list[str] = Field(default_factory=list, sa_type=Text, sa_column_kwargs=server("[]"))


# -- order ----------------------------------------------------------------------------------


def subtotal_cents(lines: list[OrderLine]) -> int:
    return sum(line.line_total_cents for line in lines)


def tip_cents(subtotal: int, percent: int) -> int:
    """A tip of ``percent`` of the subtotal, rounded half up."""
    return (subtotal * percent + 50) // 100


class OrderBase(SQLModel):
    status: OrderStatus = Field(sa_type=Text)
    tip_cents: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    payment_method: str | None = None
    kitchen_note: CleanText | None = Field(default=None, max_length=500)  # e.g. the caller's allergies
    ready_at: str | None = Field(
        default=None, index=True
    )  # when the caller was told it will be ready (UTC): now + the kitchen's time, or later


class Order(OrderBase):
    """An order with its lines; its totals are computed, never stored apart from the lines."""

    items: list[OrderLine] = Field(default_factory=list, max_length=20)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def subtotal_cents(self) -> int:
        return subtotal_cents(self.items)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.tip_cents


class PastOrder(SQLModel):
    """A placed order as a caller's history shows it."""

    created_at: str
    total_cents: int
    items: list[OrderLine]


class OrderRow(OrderBase, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_id", "customer_id", "created_at"),
        one_of("status", OrderStatus),
        CheckConstraint("subtotal_cents >= 0"),
        CheckConstraint("tip_cents >= 0"),
        CheckConstraint("total_cents >= 0"),
    )

    id: int | None = key()
    call_id: str = Field(foreign_key="calls.id", unique=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    subtotal_cents: int
    total_cents: int
    created_at: str = Field(index=True)
    updated_at: str
    placed_at: str | None = None


# -- feedback -------------------------------------------------------------------------------


class Feedback(SQLModel):
    rating: int = Field(ge=1, le=5)
    comment: CleanText = Field(default="", sa_column_kwargs=server(""))


class FeedbackRow(Feedback, table=True):
    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5"), FULL_TEXT[1].postgres_index())

    id: int | None = key()
    call_id: str = Field(foreign_key="calls.id", unique=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    created_at: str


# -- message --------------------------------------------------------------------------------


class Message(SQLModel):
    """One item of the conversation: a turn, a tool call or output, or a handoff."""

    role: str
    agent: str | None = None
    content: CleanText
    created_at: str


class MessageRow(Message, table=True):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("call_id", "seq"), FULL_TEXT[0].postgres_index())

    id: int | None = key()
    call_id: str = Field(foreign_key="calls.id")
    seq: int


# -- caller facts ---------------------------------------------------------------------------

FactKind = Literal["allergy", "preference"]

MAX_TOPIC = 60
MAX_FACT = 120


class CallerFact(SQLModel):
    """Something a caller told us about themselves, as the call that heard it states it.

    ``topic`` is what it is about (an allergen of the menu's vocabulary, or the caller's words;
    a preference's subject such as "crust"): a newer statement on the same topic supersedes the
    older one, which stays as history. ``value`` None: the caller withdrew it ("not any more").
    """

    kind: FactKind = Field(sa_type=Text)
    topic: CleanText = Field(min_length=1, max_length=MAX_TOPIC)
    value: CleanText | None = Field(default=None, max_length=MAX_FACT)
    stated_at: str


class CallerFactRow(CallerFact, table=True):
    __tablename__ = "caller_facts"
    __table_args__ = (
        UniqueConstraint("call_id", "kind", "topic"),
        partial("ix_caller_facts_current", "customer_id", "kind", "topic", where="superseded_at IS NULL"),
        one_of("kind", FactKind),
    )

    id: int | None = key()
    customer_id: int = Field(foreign_key="customers.id")
    call_id: str = Field(foreign_key="calls.id")
    superseded_at: str | None = None


# -- customer -------------------------------------------------------------------------------


class CustomerBase(SQLModel):
    name: CleanText | None = None
    email: str | None = None
    call_count: int = Field(default=0, sa_column_kwargs=server(0))
    order_count: int = Field(default=0, sa_column_kwargs=server(0))
    lifetime_spend_cents: int = Field(default=0, sa_column_kwargs=server(0))
    last_rating: int | None = None
    last_feedback_comment: CleanText | None = None


def name_key(name: str | None) -> str:
    """What makes two spoken names the same person's: the first name, in any case, without accents,
    after compatibility folding (NFKC: "Ｍａｒｉａ", "𝐌aria") and with look-alike letters of other
    scripts read as the Latin ones they mimic (a Cyrillic "а" in "Mаria"); a name spelled out letter
    by letter ("M a r i a") is one word."""
    if not name:
        return ""
    folded = "".join(_latin_look_alike(ch) for ch in unicodedata.normalize("NFKC", name))
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(ch))
    # Invisible characters and apostrophes join ("O'Brien"); other marks part words ("Maria-Luisa").
    kept = "".join(
        ch
        if unicodedata.category(ch)[0] in "LNMZ"
        else ""
        if ch in _JOINING or unicodedata.category(ch)[0] == "C"
        else " "
        for ch in plain.casefold()
    )
    words = kept.split()
    if not words:
        return ""
    spelled = 0
    while spelled < len(words) and len(words[spelled]) == 1:
        spelled += 1
    return "".join(words[:spelled]) if spelled > 1 else words[0]


_JOINING = frozenset("'\u2019\u02bc`")


@cache
def _latin_look_alike(ch: str) -> str:
    """The Latin letter ``ch`` is confusable with (Unicode's confusables, UTS #39), or ``ch`` itself."""
    if ch.isascii() or not ch.isprintable():
        return ch
    from confusable_homoglyphs import confusables  # its table loads on the first name compared

    for found in confusables.is_confusable(ch, greedy=True, preferred_aliases=["latin"]) or ():
        for glyph in found["homoglyphs"]:
            if len(glyph["c"]) == 1 and glyph["n"].startswith("LATIN "):
                return str(glyph["c"])
    return ch


class CustomerRow(CustomerBase, table=True):
    __tablename__ = "customers"
    __table_args__ = (CheckConstraint("last_rating BETWEEN 1 AND 5"),)

    id: int | None = key()
    participant_identity: str = Field(unique=True)
    created_at: str
    last_seen_at: str
    last_order_id: int | None = Field(default=None, foreign_key="orders.id", index=True)
    household: str | None = Field(default=None, index=True)  # the number (or identity) the profile answers on
    usual_order_id: int | None = Field(default=None, foreign_key="orders.id", index=True)  # kept by the write
    label: str | None = Field(default=None, sa_column=Column(TEXT, Computed(CUSTOMER_LABEL_SQL)))


class CustomerMemory(CustomerBase):
    """What the product knows about a caller before they say a word."""

    model_config = ConfigDict(frozen=True)  # type: ignore[assignment]

    customer_id: int
    key: str  # the profile's participant_identity
    last_order_at: str | None = None
    last_order_total_cents: int | None = None
    last_order_items: tuple[OrderLine, ...] = ()
    usual_items: tuple[OrderLine, ...] = ()  # their most frequent recent order
    facts: tuple[CallerFact, ...] = ()  # what they told us and still hold: allergies first, newest first

    def current(self, kind: FactKind) -> tuple[CallerFact, ...]:
        return tuple(fact for fact in self.facts if fact.kind == kind)


# -- erasure ----------------------------------------------------------------------------------


ErasureScope = Literal["number", "profile"]


class ErasureRow(SQLModel, table=True):
    """An erasure's audit row: when, how much, and a keyed hash of whom; nothing personal.

    ``scope``: ``number``, everything on the number (or identity) hashed in ``subject``, every call from
    it included; ``profile``, the one person whose key is hashed in ``subject``.
    """

    __tablename__ = "erasures"
    __table_args__ = (*json_text("counts"), one_of("scope", ErasureScope))

    id: int | None = key()
    erased_at: str
    subject: str = Field(index=True)
    counts: str
    scope: ErasureScope = Field(default="number", sa_type=Text, sa_column_kwargs=server("number"))


class ErasureRequest(SQLModel):
    """A caller's request to be erased that the database could not take at once: spooled, carried out
    at the spool's replay. (Told apart from a call's snapshot by its fields: it has no ``call_id``.)"""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    erase: str = Field(min_length=1)  # the profile's key
    requested_at: str


class IdentityAttemptRow(SQLModel, table=True):
    """A name said on a number that matched none of its profiles (``wrong_name``), or one not even compared
    because the number had used up its tries (``refused``): when, and a keyed hash of the number."""

    __tablename__ = "identity_attempts"
    __table_args__ = (
        Index("ix_identity_attempts_subject", "subject", "attempted_at"),
        one_of("outcome", ("wrong_name", "refused")),
    )

    id: int | None = key()
    attempted_at: str
    subject: str
    call_id: str
    outcome: str


# -- message for the staff --------------------------------------------------------------------


class StaffMessage(SQLModel):
    """What a caller who could not be put through asked the staff to do, and where to call them back."""

    request: CleanText = Field(min_length=1, max_length=500)
    callback_number: str | None = Field(default=None, max_length=40)
    reason: str = Field(min_length=1, max_length=40)  # why a message: the transfer's reason
    created_at: str = Field(index=True)


class StaffMessageRow(StaffMessage, table=True):
    __tablename__ = "staff_messages"
    __table_args__ = (UniqueConstraint("call_id", "position"),)

    id: int | None = key()
    call_id: str = Field(foreign_key="calls.id")
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    position: int


# -- call -----------------------------------------------------------------------------------


class CallUsage(SQLModel):
    """What a call used of the paid providers, as they reported it: counters that only grow while it runs.

    ``llm_requests`` counts the requests that answered; ``llm_cancelled`` those of them abandoned before
    their end (a preemptive generation thrown away, a reply the caller talked over, one past its deadline);
    ``llm_cut`` the replies ended by their deadline or length limit. Costs are computed from these and the
    prices of the day (see the dashboard), never stored.
    """

    llm_requests: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    llm_cancelled: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    llm_cut: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    llm_prompt_tokens: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    llm_cached_tokens: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    llm_completion_tokens: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    stt_audio_ms: int = Field(default=0, ge=0, sa_column_kwargs=server(0))
    tts_characters: int = Field(default=0, ge=0, sa_column_kwargs=server(0))


USAGE_FIELDS = tuple(CallUsage.model_fields)


class CallBase(CallUsage):
    caller_name: CleanText | None = None
    started_at: str | None = None
    ended_at: str | None = None
    end_reason: str | None = None
    # For the owner: how the call ended, whether we were open when it began, and a transfer to staff.
    outcome: CallOutcome | None = Field(default=None, sa_type=Text)
    restaurant_open: bool | None = Field(default=None, sa_type=Flag)
    transfer_reason: str | None = Field(default=None, max_length=40)
    transfer_status: TransferStatus | None = Field(default=None, sa_type=Text)
    # The process running the call (see db.owner): a replayed call keeps the one that ran it.
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_started: str | None = None


class CallRow(CallBase, table=True):
    __tablename__ = "calls"
    __table_args__ = (
        partial("ix_calls_open", "started_at", where="ended_at IS NULL"),
        partial("ix_calls_open_customer", "customer_id", where="ended_at IS NULL"),
        one_of("outcome", CallOutcome),
        CheckConstraint("restaurant_open IN (0, 1)"),
        one_of("transfer_status", TransferStatus),
    )

    id: str = Field(primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    started_at: str = Field(index=True)
    # The number (or identity) the call came from, known or not who spoke: an erasure of it reaches the call.
    caller_number: str | None = Field(default=None, index=True)


class CallSnapshot(CallBase):
    """A call as it stands: what the journal writes, the spool keeps and a replay writes again.

    ``messages`` holds the transcript from sequence number ``first_seq`` on (earlier ones are
    already stored); a snapshot with ``ended_at`` is the call's final, complete record.
    """

    model_config = ConfigDict(extra="ignore")  # type: ignore[assignment]

    call_id: str = Field(min_length=1, max_length=200)
    identity: str | None = None  # the caller's profile; None until they are known
    household: str | None = None  # the number a new profile answers on (default: its identity)
    email: str | None = None
    order: Order | None = None
    feedback: Feedback | None = None
    messages: list[Message] = Field(default_factory=list)
    first_seq: int = Field(default=1, ge=1)
    facts: list[CallerFact] = Field(default_factory=list)  # the call's last word on each topic
    staff_messages: list[StaffMessage] = Field(default_factory=list)  # every one the call took, in order

    @property
    def final(self) -> bool:
        return self.ended_at is not None


# -- outbox and kitchen -----------------------------------------------------------------------

DeliveryStatus = Literal["pending", "delivered", "dead"]
TicketStatus = Literal["new", "preparing", "ready", "collected"]
TICKET_STATUSES: tuple[TicketStatus, ...] = ("new", "preparing", "ready", "collected")


class OutboxRow(SQLModel, table=True):
    """A placed order queued for delivery, in the transaction that placed it."""

    __tablename__ = "outbox"
    __table_args__ = (partial("ix_outbox_undispatched", "created_at", where="dispatched_at IS NULL"),)

    id: int | None = key()
    order_id: int = Field(foreign_key="orders.id", unique=True, ondelete="CASCADE")
    idempotency_key: str = Field(unique=True)
    created_at: str
    dispatched_at: str | None = None


class DeliveryBase(SQLModel):
    """One queued order's delivery to one destination: its state and its attempts."""

    destination: str
    status: DeliveryStatus = Field(default="pending", sa_type=Text, sa_column_kwargs=server("pending"))
    attempts: int = Field(default=0, sa_column_kwargs=server(0))
    next_attempt_at: str
    last_error: str | None = None
    created_at: str
    updated_at: str
    delivered_at: str | None = None


class DeliveryRow(DeliveryBase, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("outbox_id", "destination"),
        partial("ix_deliveries_due", "next_attempt_at", where="status = 'pending'"),
        partial("ix_deliveries_dead", "updated_at", where="status = 'dead'"),
        one_of("status", DeliveryStatus),
    )

    id: int | None = key()
    outbox_id: int = Field(foreign_key="outbox.id", ondelete="CASCADE")


class Delivery(DeliveryBase):
    """A delivery as the worker and the owner see it: with its order and the order's idempotency key."""

    id: int
    outbox_id: int
    order_id: int
    idempotency_key: str


class TicketChangeRow(SQLModel, table=True):
    """A kitchen ticket moved to a status, by whom and when (the latest change is its status)."""

    __tablename__ = "ticket_changes"
    __table_args__ = (Index("ix_ticket_changes_order_id", "order_id", "id"), one_of("status", TicketStatus))

    id: int | None = key()
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE")
    status: TicketStatus = Field(sa_type=Text)
    changed_by: str
    changed_at: str


class SoldOutRow(SQLModel, table=True):
    """A dish the kitchen marked sold out for one of the restaurant's local days."""

    __tablename__ = "sold_out"
    __table_args__ = (UniqueConstraint("menu_item", "day"),)

    id: int | None = key()
    menu_item: str
    day: str
    marked_by: str
    marked_at: str


# -- PostgreSQL only ----------------------------------------------------------------------------

# The worker processes' heartbeats, so any host can tell a dead one's calls (SQLite's hosts share one file
# and tell by the process itself, see db.owner).
WORKER_HOSTS = Table(
    "worker_hosts",
    SQLModel.metadata,
    Column("host", TEXT, nullable=False),
    Column("pid", INTEGER, nullable=False),
    Column("started", TEXT, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("host", "pid", "started"),
    info=only_on("postgresql"),
)


def _portable_types(metadata: MetaData) -> None:
    """SQLModel's column types for ``str`` and ``int`` (VARCHAR, INTEGER) as the schema has them."""
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, String | AutoString):
                column.type = TEXT
            elif type(column.type) is Integer:
                column.type = INTEGER


_portable_types(SQLModel.metadata)
