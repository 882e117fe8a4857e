"""Typed per-call state: the order in progress and what the session carries between agents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, EmailStr, Field

from db import CustomerMemory, Feedback, Order, OrderLine
from db.clock import utcnow, utcnow_iso
from db.schema.models import (
    MAX_QUANTITY,
    CallerFact,
    CallOutcome,
    CallUsage,
    FactKind,
    OrderStatus,
    StaffMessage,
    TransferStatus,
    subtotal_cents,
    tip_cents,
)
from memory_agent.allergens import ALLERGENS, in_order, read_allergies
from memory_agent.menu import Menu, MenuItem
from memory_agent.replies import ReplyLimits
from memory_agent.restaurant import Restaurant
from memory_agent.settings import GuessLimits
from memory_agent.speech import format_cents, join_words

if TYPE_CHECKING:
    from memory_agent.journal import Journal

PaymentMethod = Literal["card", "cash"]

MAX_LINES = 20


class OrderLimitError(ValueError):
    """An addition would break the order's limits; the message says which."""


class OrderState(BaseModel):
    """The caller's order and feedback as the agents build it."""

    items: list[OrderLine] = Field(default_factory=list)
    placed: bool = False
    reordered: list[str] = Field(default_factory=list)  # which past orders were added: "last", "usual"
    allergies_checked: bool = False  # the caller confirmed their allergies before placing
    kitchen_note: str | None = None
    payment_method: PaymentMethod | None = None
    tip_percent: int = Field(default=0, ge=0, le=30)
    feedback_rating: int | None = Field(default=None, ge=1, le=5)
    feedback_comment: str = ""
    email: EmailStr | None = None
    pickup_at: str | None = None  # a pickup time the caller chose (UTC ISO), for an order for later
    ready_at: str | None = None  # when they were told it will be ready (UTC ISO), once placed
    declined: bool = False  # the caller said they will not order

    def order(self, *, final: bool = False) -> Order:
        """The order as the data layer stores it; unplaced orders are abandoned when the call ends."""
        status: OrderStatus = "placed" if self.placed else ("abandoned" if final else "in_progress")
        return Order(
            status=status,
            items=[line.model_copy() for line in self.items],
            tip_cents=tip_cents(subtotal_cents(self.items), self.tip_percent),
            payment_method=self.payment_method,
            kitchen_note=self.kitchen_note,
            ready_at=self.ready_at,
        )

    @property
    def total_cents(self) -> int:
        return self.order().total_cents

    @property
    def spoken_summary(self) -> str:
        if not self.items:
            return "The order is empty."
        order = self.order()
        summary = f"{join_words([line.describe() for line in order.items])}; total {format_cents(order.total_cents)}"
        if order.tip_cents:
            summary += f" including a {format_cents(order.tip_cents)} tip"
        return summary + "."

    def add(self, item: MenuItem, quantity: int, modifications: list[str], accepted: list[str] | None = None) -> None:
        """Add an item at its menu price, merging with an identical line; enforces the limits.

        ``accepted``: allergies of the caller's in the item, or the menu cannot be checked for, that they
        chose to order anyway.
        """
        if not 1 <= quantity <= MAX_QUANTITY:
            raise OrderLimitError(f"Quantity must be between 1 and {MAX_QUANTITY}; ask the caller how many they want.")
        line = next((li for li in self.items if li.menu_item == item.id and li.modifications == modifications), None)
        if line is None:
            if len(self.items) >= MAX_LINES:
                raise OrderLimitError(f"An order holds at most {MAX_LINES} different lines; place this order first.")
            self.items.append(
                OrderLine(
                    menu_item=item.id,
                    name=item.name,
                    quantity=quantity,
                    unit_price_cents=item.price_cents,
                    modifications=modifications,
                    accepted_allergens=accepted or [],
                )
            )
        elif line.quantity + quantity > MAX_QUANTITY:
            raise OrderLimitError(f"The order already has {line.quantity} {item.name}; at most {MAX_QUANTITY} each.")
        else:
            line.quantity += quantity
            line.accepted_allergens = sorted({*line.accepted_allergens, *(accepted or [])})

    def feedback(self) -> Feedback | None:
        if self.feedback_rating is None:
            return None
        return Feedback(rating=self.feedback_rating, comment=self.feedback_comment)


class StaffLine(Protocol):
    """Puts the caller through to the restaurant's staff (a SIP transfer in the worker)."""

    async def transfer(self, to: str) -> bool:
        """Transfer the call to ``to`` (E.164); True once transferred, False if it did not complete."""
        ...


@dataclass
class Userdata:
    """Everything the agents of one call share; reached as ``RunContext[Userdata].userdata``."""

    journal: Journal
    menu: Menu
    call_id: str
    caller: str | None  # the participant's key: a number in E.164, or a signed web identity; None: anonymous
    started_at: str
    recall_budget_s: float  # how long the greeting may wait for the caller lookup
    # The number is vouched for (trusted caller ID, network attestation, or a signed identity).
    # Even so, a number shared by several people needs the spoken name to say which one is calling.
    verified: bool = False
    by_phone: bool = False  # the phone network brought the call: ``caller`` is the number it comes from
    memory_enabled: bool = True
    # How long what needs the caller's memory (the name check, a reorder, past orders) waits for the lookup.
    memory_wait_s: float = 10.0
    profiles: tuple[CustomerMemory, ...] | None = None  # on the caller's number; never shown to the LLM
    identity: str | None = None  # the profile this call belongs to, once known
    memory: CustomerMemory | None = None  # that profile's memory: the only one the LLM is told
    caller_name: str | None = None
    forget_requested: bool = False  # erase this caller when the call ends
    # ``identity`` is a new profile of the household, started by a name that matched none of the number's
    # profiles: it is written only once it holds something (an order, a fact, an email, an erasure).
    provisional: bool = False
    wrong_names: int = 0  # names said on this call that matched none of the number's profiles
    naming: asyncio.Lock = field(default_factory=asyncio.Lock)  # names are compared one at a time
    guess_limits: GuessLimits = field(default_factory=GuessLimits)
    order: OrderState = field(default_factory=OrderState)
    timezone: str = "UTC"  # the restaurant's, for dates said to the caller
    # What the caller told us on this call, by (kind, topic): the last word on each. It protects
    # this call's order in any case, and is remembered once the caller is known.
    stated: dict[tuple[str, str], CallerFact] = field(default_factory=dict)
    # The restaurant (None: the menu's, open at all times), the call's clock, and the line to its staff
    # (None: no way to put a caller through here, such as a text chat).
    restaurant: Restaurant | None = None
    clock: Callable[[], datetime] = utcnow
    staff_line: StaffLine | None = None
    open_at_start: bool | None = None
    transfer_reason: str | None = None
    transfer_status: TransferStatus | None = None
    staff_messages: list[StaffMessage] = field(default_factory=list)
    # How far each LLM reply may go, and what the call used of the paid providers so far.
    reply_limits: ReplyLimits = field(default_factory=ReplyLimits)
    usage: CallUsage = field(default_factory=CallUsage)

    @property
    def place(self) -> Restaurant:
        """The restaurant this call is for."""
        return self.restaurant or Restaurant.always_open(self.menu, timezone=self.timezone)

    def outcome(self) -> CallOutcome:
        """How the call ended for the restaurant: the first of these that holds."""
        if self.forget_requested and self.identity is not None:
            return "erased"
        if self.order.placed:
            return "order_for_later" if self.order.pickup_at is not None else "order_placed"
        if self.transfer_status == "transferred":
            return "transferred"
        if self.staff_messages:
            return "message_taken"
        if self.order.declined:
            return "no_order"
        return "hung_up"

    @property
    def profile_key(self) -> str | None:
        """The profile the call is written to: ``identity``, unless it is a new one that holds nothing yet."""
        if self.provisional and not (self.order.placed or self.stated or self.order.email or self.forget_requested):
            return None
        return self.identity

    def facts(self, kind: FactKind) -> list[CallerFact]:
        """What the caller holds true now: what we remember, with this call's statements on top."""
        known: dict[tuple[str, str], CallerFact] = {
            (f.kind, f.topic): f for f in (self.memory.facts if self.memory else ())
        }
        known.update(self.stated)
        return [f for f in known.values() if f.kind == kind and f.value is not None]

    def allergens_in(self, dish: MenuItem | OrderLine, modifications: Sequence[str] = ()) -> list[str]:
        """The caller's allergens that a dish contains, with its modifications: a menu item, or an order
        line (less what was accepted on it)."""
        if isinstance(dish, OrderLine):
            item, modifications, accepted = self.menu.get(dish.menu_item), dish.modifications, dish.accepted_allergens
        else:
            item, accepted = dish, []
        added = [a for mod in modifications for a in self.menu.allergens_added(mod)]
        return [a for a in self.mine([*(item.allergens if item else ()), *added]) if a not in accepted]

    def mine(self, allergens: Iterable[str]) -> list[str]:
        """Those of ``allergens`` the caller is allergic to, each once, in the vocabulary's order."""
        held = {a for fact in self.facts("allergy") for a in _allergy_reading(fact)[0]}
        return [a for a in in_order(allergens) if a in held]

    def unchecked_allergies(self, accepted: Iterable[str] = ()) -> list[str]:
        """The caller's allergies the menu cannot be checked for (none of the nine), less ``accepted``:
        every dish needs the caller's go-ahead while one is left."""
        done = set(accepted)
        return [f.topic for f in self.facts("allergy") if _allergy_reading(f)[1] and f.topic not in done]

    def state_fact(self, kind: FactKind, topic: str, value: str | None) -> None:
        self.stated[(kind, topic)] = CallerFact(kind=kind, topic=topic, value=value, stated_at=utcnow_iso())


def _allergy_reading(fact: CallerFact) -> tuple[tuple[str, ...], bool]:
    """The allergens an allergy fact stands for, and whether the menu cannot be checked for some of it.
    A fact kept in the caller's words before the vocabulary knew them ("nuts and dairy") is read again."""
    if fact.topic in ALLERGENS:
        return (fact.topic,), False
    named = read_allergies(fact.value or fact.topic)
    return tuple(a for n in named for a in n.allergens), not named or any(not n.allergens for n in named)
