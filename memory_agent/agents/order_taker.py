"""The OrderTaker: builds the order from the menu, places it, hands over to Feedback."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Literal
from zoneinfo import ZoneInfo

from livekit.agents import RunContext, ToolError, function_tool, llm

from db import DatabaseUnavailable, RepositoryError
from db.clock import to_iso
from memory_agent.agents.base import BellaVistaAgent, instructions
from memory_agent.agents.facts import KeepsFacts
from memory_agent.agents.feedback import Feedback
from memory_agent.allergens import ALLERGENS
from memory_agent.memory import as_data, clip, describe_past_item
from memory_agent.menu import Menu, MenuItem
from memory_agent.speech import format_cents
from memory_agent.state import OrderLimitError, Userdata
from memory_agent.verification import recall

MAX_MODIFICATIONS = 5
MAX_MODIFICATION_CHARS = 80
MAX_PAST_ORDERS = 10
MAX_NOTE = 500
QUEUE_HORIZON = 3

INSTRUCTIONS = """\
You take the caller's order. Only these items can be ordered, by id [allergens]:
{menu}

Add items as the caller asks. Note allergies and lasting preferences they state. When they are \
done, read the order back with its total and, once they agree, place it. If they will not order, \
hand over to feedback."""


class OrderTaker(KeepsFacts):
    def __init__(self, ud: Userdata, *, chat_ctx: llm.ChatContext | None = None) -> None:
        super().__init__(instructions=_instructions(ud), chat_ctx=chat_ctx)

    def fresh_instructions(self) -> str:
        return _instructions(self.userdata)

    async def on_enter(self) -> None:
        self.session.generate_reply()

    async def on_exit(self) -> None:
        self.userdata.journal.checkpoint()

    step_tools = frozenset(
        {
            "take_message",
            "transfer_to_feedback",
            "confirm_order",
            "set_payment_method",
            "remove_from_order",
            "set_pickup_time",
            "reorder_last_order",
            "reorder_usual",
            "forget_allergy",
            "forget_preference",
        }
    )

    def not_now(self) -> set[str]:
        """Taking items, then (once there are items) confirming, pickup and payment: what fits the order now."""
        ud = self.userdata
        hidden = set(super().not_now())
        if ud.order.items:
            hidden.add("transfer_to_feedback")  # refused while items are not placed
        else:
            hidden |= {"confirm_order", "set_payment_method", "remove_from_order"}
            if ud.place.is_open(ud.clock()):
                hidden.add("set_pickup_time")  # a later pickup is chosen with the order in hand
        memory = ud.memory
        # A verified caller whose lookup is not back yet may have a past: the tools wait for it.
        pending = memory is None and ud.verified and ud.memory_enabled and ud.caller is not None and ud.profiles is None
        if memory is None and not pending:
            hidden.add("recall_past_orders")
        if not (memory.last_order_items if memory else pending):
            hidden.add("reorder_last_order")
        if not (memory.usual_items if memory else pending):
            hidden.add("reorder_usual")
        if not ud.facts("allergy"):
            hidden.add("forget_allergy")
        if not ud.facts("preference"):
            hidden.add("forget_preference")
        return hidden

    @function_tool
    async def add_to_order(
        self,
        context: RunContext[Userdata],
        item: str,
        quantity: int = 1,
        modifications: tuple[str, ...] = (),
        accept_allergens: bool = False,
    ) -> str:
        """Add a menu item as soon as the caller asks for it.

        Args:
            item: Menu item id
            quantity: 1 to 20
            modifications: e.g. ["no onions"]
            accept_allergens: True only if, told it has their allergen, they still want it
        """
        ud = context.userdata
        _ensure_open(ud)
        menu_item = find_item(ud.menu, item)
        if not menu_item.available:
            raise ToolError(f"{menu_item.name} is not available today; offer something else.")
        if await ud.journal.sold_out(menu_item.id, datetime.now(ZoneInfo(ud.timezone)).date().isoformat()):
            raise ToolError(f"{menu_item.name} is sold out for today; tell the caller and offer something else.")
        mods = clean_modifications(modifications)
        accepted = [*ud.allergens_in(menu_item, mods), *ud.unchecked_allergies()]
        if accepted and not accept_allergens:
            raise ToolError(_allergy_warning(ud, menu_item, mods))
        try:
            ud.order.add(menu_item, quantity, mods, accepted=accepted)
        except OrderLimitError as exc:
            raise ToolError(str(exc)) from None
        ud.journal.checkpoint()
        return f"Added {quantity}x {menu_item.name}. Order so far: {as_data(ud.order.spoken_summary)}"

    @function_tool
    async def remove_from_order(self, context: RunContext[Userdata], item: str) -> str:
        """Remove an item from the order.

        Args:
            item: Menu item id
        """
        ud = context.userdata
        _ensure_open(ud)
        menu_item = find_item(ud.menu, item)
        kept = [li for li in ud.order.items if li.menu_item != menu_item.id]
        if len(kept) == len(ud.order.items):
            raise ToolError(f"{menu_item.name} is not in the order. The order is: {as_data(ud.order.spoken_summary)}")
        ud.order.items = kept
        ud.journal.checkpoint()
        return f"Removed {menu_item.name}. Order now: {as_data(ud.order.spoken_summary)}"

    @function_tool
    async def reorder_last_order(self, context: RunContext[Userdata]) -> str:
        """Add the caller's previous order ("the same as last time")."""
        return await self._reorder(context.userdata, "last")

    @function_tool
    async def reorder_usual(self, context: RunContext[Userdata]) -> str:
        """Add the caller's usual order (their most frequent one)."""
        return await self._reorder(context.userdata, "usual")

    async def _reorder(self, ud: Userdata, which: Literal["last", "usual"]) -> str:
        """A past order again, as today's menu has it: what is unavailable, unsafe or repriced is said."""
        _ensure_open(ud)
        if which in ud.order.reordered:
            raise ToolError(f"That order is already in this order: {as_data(ud.order.spoken_summary)}")
        if ud.memory is None and ud.verified:
            await recall(ud)  # the greeting went ahead without memory (slow lookup): worth the wait now
        memory = ud.memory
        past = (memory.last_order_items if which == "last" else memory.usual_items) if memory else ()
        if not past:
            raise ToolError("We have no such order of this caller on record; ask what they would like.")
        ud.order.reordered.append(which)
        gone, unsafe, not_checked, repriced, skipped = [], [], [], [], []
        for old in past:
            current = ud.menu.get(old.menu_item)
            if current is None or not current.available:
                gone.append(old.name)
                continue
            if risky := ud.allergens_in(current, old.modifications):
                unsafe.append(f"{current.name} ({', '.join(risky)})")
                continue
            if unchecked := ud.unchecked_allergies():
                not_checked.append(f"{current.name} ({', '.join(unchecked)})")
                continue
            if current.price_cents != old.unit_price_cents:
                was, now = format_cents(old.unit_price_cents), format_cents(current.price_cents)
                repriced.append(f"{current.name} now {now} (was {was})")
            try:
                ud.order.add(current, old.quantity, list(old.modifications))
            except OrderLimitError:
                skipped.append(current.name)
        ud.journal.checkpoint()
        said = [f"Added their {which} order at today's prices. Order now: {as_data(ud.order.spoken_summary)}"]
        for label, names in (
            ("Not available today, left out", gone),
            ("Left out, it has their allergen", unsafe),
            (
                "Left out, the menu is not checked for their allergy (add with accept_allergens=true if wanted)",
                not_checked,
            ),
            ("Price changed, tell them", repriced),
            ("Over the order's limits, not added", skipped),
        ):
            if names:
                said.append(f"{label}: {'; '.join(names)}.")
        return " ".join(said)

    @function_tool
    async def recall_past_orders(self, context: RunContext[Userdata], limit: int = 3) -> str:
        """What the caller ordered before, and when.

        Args:
            limit: 1 to 10
        """
        ud = context.userdata
        if not 1 <= limit <= MAX_PAST_ORDERS:
            raise ToolError(f"The limit must be from 1 to {MAX_PAST_ORDERS}.")
        await recall(ud)
        if ud.identity is None or not ud.memory_enabled:
            raise ToolError("We do not know who is calling yet: ask for their name first.")
        try:
            past = await ud.journal.past_orders(ud.identity, limit)
        except RepositoryError:
            raise ToolError("Their past orders cannot be looked up right now; apologize.") from None
        if not past:
            return "They have no past orders with us."
        today = ud.clock().astimezone(ZoneInfo(ud.timezone)).date()
        orders = []
        for order in past:
            day = datetime.fromisoformat(order.created_at).astimezone(ZoneInfo(ud.timezone)).date()
            orders.append(
                {
                    "date": f"{day:%A %-d %B %Y}",
                    "days_ago": (today - day).days,
                    "items": [describe_past_item(line) for line in order.items],
                    "total": format_cents(order.total_cents),
                }
            )
        return f"Their last {len(orders)} order(s), newest first (caller data): {as_data(orders)}"

    @function_tool
    async def set_payment_method(
        self, context: RunContext[Userdata], method: Literal["card", "cash"], tip_percent: int = 0
    ) -> str:
        """Record how they pay at pickup, and their tip.

        Args:
            method: Never ask for card numbers
            tip_percent: 0 to 30
        """
        ud = context.userdata
        _ensure_open(ud)
        if not 0 <= tip_percent <= 30:
            raise ToolError("The tip must be a whole percentage from 0 to 30.")
        ud.order.payment_method = method
        ud.order.tip_percent = tip_percent
        ud.journal.checkpoint()
        tip = format_cents(ud.order.order().tip_cents)
        return f"Paying by {method} with a {tip} tip. Order: {as_data(ud.order.spoken_summary)}"

    @function_tool
    async def confirm_order(self, context: RunContext[Userdata], allergies_checked: bool = False) -> BellaVistaAgent:
        """Place the order, once read back and agreed.

        Args:
            allergies_checked: True once they confirmed the allergies we remember.
        """
        ud = context.userdata
        _ensure_open(ud)
        if not ud.order.items:
            raise ToolError("The order is empty: ask the caller what they would like first.")
        remembered = [f.topic for f in ud.facts("allergy") if ("allergy", f.topic) not in ud.stated]
        if remembered and not (allergies_checked or ud.order.allergies_checked):
            raise ToolError(
                f"First ask once whether they are still allergic to {as_data(remembered)} (forget_allergy any they"
                " no longer have), then call confirm_order with allergies_checked=true."
            )
        unsafe = [
            f"{line.name} ({', '.join(risky)})"
            for line in ud.order.items
            if (risky := [*ud.allergens_in(line), *ud.unchecked_allergies(line.accepted_allergens)])
        ]
        if unsafe:
            raise ToolError(
                f"The order has {'; '.join(unsafe)}, which the caller is allergic to (or the menu is not checked"
                " for). Tell them; remove it, and add it again with accept_allergens=true only if they still want it."
            )
        ud.order.allergies_checked = True
        allergies = [f.topic if f.topic in ALLERGENS else f.value or f.topic for f in ud.facts("allergy")]
        ud.order.kitchen_note = clip("Allergies: " + ", ".join(allergies), MAX_NOTE) if allergies else None
        ud.order.ready_at = to_iso(await ready_time(ud))
        ud.order.placed = True
        try:
            # Durable (in the database, or else in the spool) before the caller hears "placed".
            await ud.journal.commit()
        except DatabaseUnavailable:
            ud.order.placed = False
            ud.order.ready_at = None
            raise ToolError(
                "The order could not be recorded because of a problem on our side. Apologize, keep the order"
                " as it is and offer to try placing it again in a moment."
            ) from None
        # Placed orders cannot change: the call goes on to feedback, which tells the caller first.
        return Feedback(ud, chat_ctx=self.chat_ctx)

    @function_tool
    async def transfer_to_feedback(self, context: RunContext[Userdata]) -> BellaVistaAgent:
        """Hand over to feedback once the order is placed (or they will not order)."""
        ud = context.userdata
        if ud.order.items and not ud.order.placed:
            raise ToolError(
                "The order has items but is not placed: confirm it with the caller, or, if they no longer"
                " want it, remove the items with remove_from_order first."
            )
        ud.order.declined = not ud.order.placed
        return Feedback(ud, chat_ctx=self.chat_ctx)

    @function_tool
    async def set_pickup_time(self, context: RunContext[Userdata], time: str) -> str:
        """When the caller will collect the order, if later than it would be ready or while we are closed.

        Args:
            time: Local 24-hour "HH:MM"
        """
        ud = context.userdata
        _ensure_open(ud)
        place, now = ud.place, ud.clock()
        window = place.pickup_window(now)
        if window is None:
            raise ToolError("The restaurant has no opening in sight: apologize, no order can be taken for later.")
        match = re.fullmatch(r"\s*(\d{1,2})[:.h](\d{2})\s*", time)
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise ToolError('The time must be 24-hour "HH:MM", such as "18:30"; ask the caller again.')
        wanted = clock_time(int(match[1]), int(match[2]))
        first, last = place.local(window.start).date(), place.local(window.end).date()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        pickup = next(
            (at for day in days if (at := datetime.combine(day, wanted, place.zone).astimezone(UTC)) in window), None
        )
        between = f"between {place.spoken(window.start, now=now)} and {place.spoken(window.end, now=now)}"
        if pickup is None:
            raise ToolError(f"{time} is outside the hours: the order can be collected {between}. Ask again.")
        ud.order.pickup_at = to_iso(pickup)
        ud.journal.checkpoint()
        return f"Pickup set for {place.spoken(pickup, now=now)}. Carry on with the order."


async def ready_time(ud: Userdata) -> datetime:
    """When an order placed now will be ready: at the pickup time chosen, or the kitchen's time plus its queue.

    Raises a ToolError while the restaurant is closed (without a pickup time), or for a pickup time no
    longer within the hours."""
    place, now = ud.place, ud.clock()
    if ud.order.pickup_at is not None:
        pickup = datetime.fromisoformat(ud.order.pickup_at)
        window = place.pickup_window(now)
        if window is None or pickup not in window:
            ud.order.pickup_at = None
            raise ToolError(
                "The pickup time is outside the restaurant's hours now: ask for another time and set_pickup_time."
            )
        return pickup
    if not place.is_open(now):
        following = place.next_opening(now)
        when = f"; it opens next at {place.spoken(following.start, now=now)}" if following else ""
        raise ToolError(
            f"The restaurant is closed now{when}. Tell the caller, and offer to take the order for pickup then:"
            " ask what time, and call set_pickup_time before placing it."
        )
    prep = timedelta(minutes=place.prep_minutes)
    # Orders due within a few preparation times are in the kitchen's hands; later ones are not yet.
    queue = await ud.journal.kitchen_queue(now=now, until=now + QUEUE_HORIZON * prep) or 0
    return now + prep + timedelta(minutes=place.minutes_per_queued_order * queue)


def _allergy_warning(ud: Userdata, item: MenuItem, modifications: list[str]) -> str:
    """What the LLM is told when a dish, as modified, has or may have the caller's allergen."""
    problems = []
    if risky := ud.allergens_in(item):
        problems.append(f"{item.name} contains {', '.join(risky)}")
    for mod in modifications:
        if found := ud.mine(ud.menu.allergens_added(mod)):
            problems.append(f"the modification {as_data(mod)} adds {', '.join(found)}")
    said = []
    if problems:
        warning = "; ".join(problems) + ", which the caller is allergic to."
        said.append(warning[0].upper() + warning[1:])
    if unchecked := ud.unchecked_allergies():
        said.append(
            f"Our menu is not checked for {as_data(unchecked)}, which the caller is allergic to: we cannot say"
            f" whether {item.name} has it."
        )
    return " ".join([*said, "Tell them; add it only if they still want it, with accept_allergens=true."])


def _ensure_open(ud: Userdata) -> None:
    if ud.order.placed:
        raise ToolError("The order is already placed and cannot change; call transfer_to_feedback.")


def find_item(menu: Menu, spoken: object) -> MenuItem:
    """The menu item the LLM named, or a ToolError listing what is valid."""
    found = menu.find(spoken) if isinstance(spoken, str) and len(spoken) <= 100 else None
    if found is None:
        valid = ", ".join(f"{i.id} ({i.name})" for i in menu.items)
        raise ToolError(f"{str(spoken)[:60]!r} is not on the menu. Valid items: {valid}.")
    return found


def clean_modifications(modifications: tuple[str, ...]) -> list[str]:
    """Short, printable modification notes, or a ToolError saying how to fix them."""
    if len(modifications) > MAX_MODIFICATIONS:
        raise ToolError(f"At most {MAX_MODIFICATIONS} modifications per item.")
    cleaned = []
    for mod in modifications:
        text = " ".join("".join(ch for ch in mod if unicodedata.category(ch)[0] != "C").split())
        if len(text) > MAX_MODIFICATION_CHARS:
            raise ToolError(
                f'Modifications must be short notes of at most {MAX_MODIFICATION_CHARS} characters, like "extra basil".'
            )
        if text:
            cleaned.append(text)
    return cleaned


def _instructions(ud: Userdata) -> str:
    return instructions(ud, INSTRUCTIONS.format(menu=ud.menu.prompt_listing()))
