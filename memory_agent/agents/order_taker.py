"""The OrderTaker: builds the order from the menu, places it, hands over to Feedback."""

from __future__ import annotations

import unicodedata
from typing import Literal

from livekit.agents import RunContext, ToolError, function_tool, llm

from db import DatabaseUnavailable
from memory_agent.agents.base import BellaVistaAgent, caller_context
from memory_agent.agents.feedback import Feedback
from memory_agent.menu import Menu, MenuItem
from memory_agent.speech import format_cents
from memory_agent.state import OrderLimitError, Userdata
from memory_agent.verification import recognize

MAX_MODIFICATIONS = 5
MAX_MODIFICATION_CHARS = 80

INSTRUCTIONS = """\
You take the caller's order. Only items on this menu can be ordered; refer to them by id:
{menu}

Add each item with add_to_order as the caller asks for it and remove with remove_from_order. \
If the caller wants the same as last time, call reorder_last_order. If they say how they \
will pay, call set_payment_method. When they are done, read the order back with its total and, \
once they agree, call confirm_order. After the order is placed (or if they do not want to \
order after all), call transfer_to_feedback."""


class OrderTaker(BellaVistaAgent):
    def __init__(self, ud: Userdata, *, chat_ctx: llm.ChatContext | None = None) -> None:
        super().__init__(
            instructions=caller_context(ud) + "\n\n" + INSTRUCTIONS.format(menu=ud.menu.prompt_listing()),
            chat_ctx=chat_ctx,
        )

    async def on_enter(self) -> None:
        self.session.generate_reply()

    async def on_exit(self) -> None:
        self.userdata.journal.checkpoint()

    @function_tool
    async def add_to_order(
        self,
        context: RunContext[Userdata],
        item: str,
        quantity: int = 1,
        modifications: tuple[str, ...] = (),
    ) -> str:
        """Add a menu item to the order as soon as the caller asks for it.

        Args:
            item: The menu item id (preferred) or its name, e.g. "margherita_pizza".
            quantity: How many, from 1 to 20.
            modifications: Short changes the caller asked for, e.g. ["extra basil", "no onions"].
        """
        ud = context.userdata
        _ensure_open(ud)
        menu_item = find_item(ud.menu, item)
        try:
            ud.order.add(menu_item, quantity, clean_modifications(modifications))
        except OrderLimitError as exc:
            raise ToolError(str(exc)) from None
        ud.journal.checkpoint()
        return f"Added {quantity}x {menu_item.name}. Order so far: {ud.order.spoken_summary}"

    @function_tool
    async def remove_from_order(self, context: RunContext[Userdata], item: str) -> str:
        """Remove an item from the order entirely when the caller no longer wants it.

        Args:
            item: The menu item id or name to remove, e.g. "tiramisu".
        """
        ud = context.userdata
        _ensure_open(ud)
        menu_item = find_item(ud.menu, item)
        kept = [li for li in ud.order.items if li.menu_item != menu_item.id]
        if len(kept) == len(ud.order.items):
            raise ToolError(f"{menu_item.name} is not in the order. The order is: {ud.order.spoken_summary}")
        ud.order.items = kept
        ud.journal.checkpoint()
        return f"Removed {menu_item.name}. Order now: {ud.order.spoken_summary}"

    @function_tool
    async def reorder_last_order(self, context: RunContext[Userdata]) -> str:
        """Add everything from the caller's previous order, when they ask for "the same as last time". Call it once."""
        ud = context.userdata
        _ensure_open(ud)
        if ud.order.reordered:
            raise ToolError(f"The previous order is already in this order: {ud.order.spoken_summary}")
        if ud.memory is None and ud.profiles is None and ud.verified and ud.memory_enabled:
            # The greeting went ahead without memory (slow lookup); the caller is worth the wait now.
            recognize(ud, await ud.journal.household(budget_s=None))
        past = ud.memory.last_order_items if ud.memory else ()
        if not past:
            raise ToolError("We have no previous order of this caller on record; ask what they would like.")
        ud.order.reordered = True
        missing, skipped = [], []
        for old in past:
            current = ud.menu.get(old.menu_item)
            if current is None:
                missing.append(old.name)
                continue
            try:
                ud.order.add(current, old.quantity, list(old.modifications))
            except OrderLimitError:
                skipped.append(old.name)
        ud.journal.checkpoint()
        note = f" No longer on the menu: {', '.join(missing)}." if missing else ""
        note += f" Over the order's limits, not added: {', '.join(skipped)}." if skipped else ""
        return f"Added the previous order at today's prices. Order now: {ud.order.spoken_summary}{note}"

    @function_tool
    async def set_payment_method(
        self, context: RunContext[Userdata], method: Literal["card", "cash"], tip_percent: int = 0
    ) -> str:
        """Record how the caller will pay at pickup and the tip they want to add.

        Args:
            method: "card" or "cash". Never ask for or repeat card numbers.
            tip_percent: Tip as a whole percentage of the subtotal, from 0 to 30.
        """
        ud = context.userdata
        _ensure_open(ud)
        if not 0 <= tip_percent <= 30:
            raise ToolError("The tip must be a whole percentage from 0 to 30.")
        ud.order.payment_method = method
        ud.order.tip_percent = tip_percent
        ud.journal.checkpoint()
        tip = format_cents(ud.order.order().tip_cents)
        return f"Paying by {method} with a {tip} tip. Order: {ud.order.spoken_summary}"

    @function_tool
    async def confirm_order(self, context: RunContext[Userdata]) -> str:
        """Place the order, after reading it back and the caller agreeing. Never before they agree."""
        ud = context.userdata
        _ensure_open(ud)
        if not ud.order.items:
            raise ToolError("The order is empty: ask the caller what they would like first.")
        ud.order.placed = True
        try:
            # Durable (in the database, or else in the spool) before the caller hears "placed".
            await ud.journal.commit()
        except DatabaseUnavailable:
            ud.order.placed = False
            raise ToolError(
                "The order could not be recorded because of a problem on our side. Apologize, keep the order"
                " as it is and offer to try placing it again in a moment."
            ) from None
        return f"Order placed: {ud.order.spoken_summary} Tell the caller it will be ready in about 25 minutes."

    @function_tool
    async def transfer_to_feedback(self, context: RunContext[Userdata]) -> BellaVistaAgent:
        """Hand over to the feedback agent once the order is placed, or if the caller does not want to order."""
        ud = context.userdata
        if ud.order.items and not ud.order.placed:
            raise ToolError(
                "The order has items but is not placed: confirm it with the caller, or, if they no longer"
                " want it, remove the items with remove_from_order first."
            )
        return Feedback(ud, chat_ctx=self.chat_ctx)


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
