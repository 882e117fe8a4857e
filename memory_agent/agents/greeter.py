"""The Greeter: recognizes the caller, learns a new caller's name, hands over to the OrderTaker."""

from __future__ import annotations

import logging
import unicodedata

from livekit.agents import RunContext, ToolError, function_tool

from memory_agent.agents.base import BellaVistaAgent, caller_context
from memory_agent.agents.order_taker import OrderTaker
from memory_agent.state import Userdata

log = logging.getLogger("memory_agent")

MAX_NAME = 60

INSTRUCTIONS = """\
You greet callers. A returning caller is greeted warmly by name and reminded of their last \
order; if they were unhappy last time, apologize first. A new caller is welcomed to \
{restaurant} and asked for their name, which you save with save_customer_name. As soon as the \
caller wants to order (or you know their name), call transfer_to_order_taker."""


class Greeter(BellaVistaAgent):
    def __init__(self, ud: Userdata) -> None:
        super().__init__(instructions=_instructions(ud))

    async def on_enter(self) -> None:
        ud = self.userdata
        if ud.memory_enabled and ud.identity is not None and ud.memory is None:
            ud.memory = await ud.journal.recall(budget_s=ud.recall_budget_s)
            if ud.memory is not None:
                ud.caller_name = ud.caller_name or ud.memory.name
                await self.update_instructions(_instructions(ud))
        self.session.generate_reply()

    async def on_exit(self) -> None:
        self.userdata.journal.checkpoint()

    @function_tool
    async def save_customer_name(self, context: RunContext[Userdata], name: str) -> str:
        """Save the caller's name once they have told you. Do not call it for a caller whose name you already know.

        Args:
            name: The caller's name as they said it, e.g. "Maria".
        """
        ud = context.userdata
        cleaned = clean_name(name)
        ud.caller_name = cleaned
        ud.journal.checkpoint()
        return f"Saved the name {cleaned!r}. Greet them by it and offer to take their order."

    @function_tool
    async def transfer_to_order_taker(self, context: RunContext[Userdata]) -> BellaVistaAgent:
        """Hand the caller to the order taker when they want to order. Call it only once."""
        return OrderTaker(context.userdata, chat_ctx=self.chat_ctx)


def _instructions(ud: Userdata) -> str:
    return caller_context(ud) + "\n\n" + INSTRUCTIONS.format(restaurant=ud.menu.restaurant)


def clean_name(name: object) -> str:
    """A caller's name fit to store and say back, or a ToolError that says what was wrong."""
    if not isinstance(name, str):
        raise ToolError('The name must be text, e.g. "Maria".')
    cleaned = " ".join("".join(ch for ch in name if unicodedata.category(ch)[0] != "C").split())
    if not cleaned:
        raise ToolError("The name is empty: ask the caller for their name again.")
    if len(cleaned) > MAX_NAME:
        raise ToolError(f"That is not a name (over {MAX_NAME} characters): ask the caller for their first name.")
    return cleaned
