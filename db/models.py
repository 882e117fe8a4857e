"""SQLModel models of the schema, named by role; the migrations in ``db.migrations`` create it.

The hot paths use hand-written SQL (see ``db.repository``); these models are for tools,
tests and ad-hoc reads, and a test keeps them identical to the migrated schema.
"""

from __future__ import annotations

from sqlalchemy import Column, Computed, Text
from sqlmodel import Field, SQLModel

# customers.label (migration 2): what Datasette shows for a link to a customer.
CUSTOMER_LABEL_SQL = (
    "CASE WHEN name IS NULL OR name = '' THEN participant_identity ELSE name || ' (' || participant_identity || ')' END"
)


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    participant_identity: str = Field(unique=True)
    name: str | None = None
    email: str | None = None
    created_at: str
    last_seen_at: str
    call_count: int = 0
    order_count: int = 0
    lifetime_spend_cents: int = 0
    last_order_id: int | None = Field(default=None, foreign_key="orders.id", index=True)
    last_rating: int | None = None
    last_feedback_comment: str | None = None
    label: str | None = Field(default=None, sa_column=Column(Text, Computed(CUSTOMER_LABEL_SQL, persisted=False)))


class Call(SQLModel, table=True):
    __tablename__ = "calls"

    id: str = Field(primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    caller_name: str | None = None
    started_at: str
    ended_at: str | None = None
    end_reason: str | None = None
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_started: str | None = None


class Order(SQLModel, table=True):
    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", unique=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    status: str
    subtotal_cents: int
    tip_cents: int = 0
    total_cents: int
    payment_method: str | None = None
    created_at: str
    updated_at: str
    placed_at: str | None = None


class OrderItem(SQLModel, table=True):
    __tablename__ = "order_items"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    position: int
    menu_item: str
    name: str
    quantity: int
    unit_price_cents: int
    modifications: str = "[]"


class Feedback(SQLModel, table=True):
    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", unique=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    rating: int
    comment: str = ""
    created_at: str


class Message(SQLModel, table=True):
    __tablename__ = "messages"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True)
    seq: int
    role: str
    agent: str | None = None
    content: str
    created_at: str
