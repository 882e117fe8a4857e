"""Typed per-call state: the order in progress and what the session carries between agents."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, computed_field

from db import CustomerMemory, FeedbackRecord, ItemRecord, OrderRecord, Repository
from db.records import OrderStatus
from memory_agent.menu import Menu, MenuItem
from memory_agent.speech import format_cents, join_words

PaymentMethod = Literal["card", "cash"]

MAX_QUANTITY = 20
MAX_LINES = 20


class OrderLimitError(ValueError):
    """An addition would break the order's limits; the message says which."""


class OrderItemData(ItemRecord):
    """One order line; the unit price always comes from the menu."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity

    def describe(self) -> str:
        text = f"{self.quantity}x {self.name}"
        return text + (f" ({', '.join(self.modifications)})" if self.modifications else "")


class OrderState(BaseModel):
    """The caller's order and feedback as the agents build it."""

    items: list[OrderItemData] = Field(default_factory=list)
    placed: bool = False
    reordered: bool = False
    payment_method: PaymentMethod | None = None
    tip_percent: int = Field(default=0, ge=0, le=30)
    feedback_rating: int | None = Field(default=None, ge=1, le=5)
    feedback_comment: str = ""
    email: EmailStr | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def subtotal_cents(self) -> int:
        return sum(item.line_total_cents for item in self.items)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tip_cents(self) -> int:
        """The tip follows the order: a percentage of the current subtotal, rounded half up."""
        return (self.subtotal_cents * self.tip_percent + 50) // 100

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.tip_cents

    @computed_field  # type: ignore[prop-decorator]
    @property
    def item_count(self) -> int:
        return sum(item.quantity for item in self.items)

    @property
    def spoken_summary(self) -> str:
        if not self.items:
            return "The order is empty."
        lines = join_words([item.describe() for item in self.items])
        summary = f"{lines}; total {format_cents(self.total_cents)}"
        if self.tip_cents:
            summary += f" including a {format_cents(self.tip_cents)} tip"
        return summary + "."

    def add(self, item: MenuItem, quantity: int, modifications: list[str]) -> None:
        """Add an item at its menu price, merging with an identical line; enforces the limits."""
        if not 1 <= quantity <= MAX_QUANTITY:
            raise OrderLimitError(f"Quantity must be between 1 and {MAX_QUANTITY}; ask the caller how many they want.")
        line = next((li for li in self.items if li.menu_item_id == item.id and li.modifications == modifications), None)
        if line is None:
            if len(self.items) >= MAX_LINES:
                raise OrderLimitError(f"An order holds at most {MAX_LINES} different lines; place this order first.")
            self.items.append(
                OrderItemData(
                    menu_item_id=item.id,
                    name=item.name,
                    quantity=quantity,
                    unit_price_cents=item.price_cents,
                    modifications=modifications,
                )
            )
        elif line.quantity + quantity > MAX_QUANTITY:
            raise OrderLimitError(f"The order already has {line.quantity} {item.name}; at most {MAX_QUANTITY} each.")
        else:
            line.quantity += quantity

    def to_record(self, *, final: bool) -> OrderRecord:
        """The order as the data layer stores it; unplaced orders are abandoned when the call ends."""
        status: OrderStatus = "placed" if self.placed else ("abandoned" if final else "in_progress")
        return OrderRecord(
            status=status,
            items=[ItemRecord.model_validate(item.model_dump()) for item in self.items],
            tip_cents=self.tip_cents,
            payment_method=self.payment_method,
        )

    def feedback_record(self) -> FeedbackRecord | None:
        if self.feedback_rating is None:
            return None
        return FeedbackRecord(rating=self.feedback_rating, comment=self.feedback_comment)


@dataclass
class Userdata:
    """Everything the agents of one call share; reached as ``RunContext[Userdata].userdata``."""

    repo: Repository
    menu: Menu
    call_id: str
    identity: str | None
    started_at: str
    recall_budget_s: float
    memory_enabled: bool = True
    customer_id: int | None = None
    memory: CustomerMemory | None = None
    caller_name: str | None = None
    order: OrderState = field(default_factory=OrderState)
    slow_write: asyncio.Future[object] | None = None  # a write-through still waiting on a busy database
