"""What the repository takes and returns: plain validated data, no speech and no framework types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OrderStatus = Literal["in_progress", "placed", "abandoned"]


class ItemRecord(BaseModel):
    """One line of an order, priced from the menu."""

    menu_item_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=20)
    unit_price_cents: int = Field(ge=0)
    modifications: list[str] = Field(default_factory=list, max_length=10)


class OrderRecord(BaseModel):
    status: OrderStatus
    items: list[ItemRecord]
    tip_cents: int = Field(default=0, ge=0)
    payment_method: str | None = None

    @property
    def subtotal_cents(self) -> int:
        return sum(item.unit_price_cents * item.quantity for item in self.items)

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.tip_cents


class FeedbackRecord(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str = ""


class MessageRecord(BaseModel):
    role: str
    agent: str | None = None
    content: str
    created_at: str


class CallRecord(BaseModel):
    """Everything a finished call leaves behind, written in one transaction (or spooled)."""

    call_id: str
    customer_id: int | None
    identity: str | None = None
    started_at: str | None = None
    caller_name: str | None = None
    email: str | None = None
    order: OrderRecord | None = None
    feedback: FeedbackRecord | None = None
    messages: list[MessageRecord] = Field(default_factory=list)
    ended_at: str
    end_reason: str


class PastItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    menu_item_id: str
    name: str
    quantity: int
    modifications: list[str]


class CustomerMemory(BaseModel):
    """What the product knows about a caller before they say a word."""

    model_config = ConfigDict(frozen=True)

    customer_id: int
    name: str | None
    email: str | None
    call_count: int
    order_count: int
    lifetime_spend_cents: int
    last_order_at: str | None = None
    last_order_total_cents: int | None = None
    last_order_items: tuple[PastItem, ...] = ()
    last_rating: int | None = None
    last_feedback_comment: str | None = None
