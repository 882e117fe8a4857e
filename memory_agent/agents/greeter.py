"""The Greeter: recognizes the caller, learns a new caller's name, hands over to the OrderTaker."""

from __future__ import annotations

import logging
import unicodedata

from livekit.agents import RunContext, ToolError, function_tool

from memory_agent.agents.base import BellaVistaAgent, instructions, remember_when_back
from memory_agent.agents.facts import NotesFacts
from memory_agent.agents.order_taker import OrderTaker
from memory_agent.state import Userdata
from memory_agent.verification import identify, recognize

log = logging.getLogger("memory_agent")

MAX_NAME = 60

INSTRUCTIONS = """\
You greet callers. Greet a caller we remember by name and remind them of their last order \
(apologize first if they were unhappy last time). Welcome anyone else to {restaurant} and ask \
their name. Note any allergy they mention. As soon as they want to order, transfer them."""


class Greeter(NotesFacts):
    def __init__(self, ud: Userdata) -> None:
        super().__init__(instructions=_instructions(ud))

    async def on_enter(self) -> None:
        ud = self.userdata
        if ud.caller is not None and ud.profiles is None and ud.identity is None:
            if not ud.memory_enabled:
                recognize(ud, None)
            elif (found := await ud.journal.back_within(ud.recall_budget_s)) is not None:
                recognize(ud, found)
            else:  # greet now; the memory reaches the agents when the lookup is back
                remember_when_back(self.session)
            await self.update_instructions(_instructions(ud))
        self.session.generate_reply()
        ud.journal.open()  # the call's start is written while the greeting is on its way

    async def on_exit(self) -> None:
        self.userdata.journal.checkpoint()

    def fresh_instructions(self) -> str:
        return _instructions(self.userdata)

    def not_now(self) -> set[str]:
        # Greeting is a turn or two: an allergy keeps the caller safe from the first item, a preference
        # waits for the order taker, who has the carried conversation.
        return {*super().not_now(), "remember_preference"}

    @function_tool
    async def save_customer_name(self, context: RunContext[Userdata], name: str) -> BellaVistaAgent:
        """Save the name the caller told you (never one you already know); the order taker greets them by it.

        Args:
            name: e.g. "Maria"
        """
        ud = context.userdata
        await identify(ud, clean_name(name))
        ud.journal.checkpoint()
        # Knowing who calls is the Greeter's whole job: the order taker, told what we remember of
        # them, greets them by name (one request to the LLM, where a reply and a transfer took two).
        return OrderTaker(ud, chat_ctx=self.chat_ctx)

    @function_tool
    async def transfer_to_order_taker(self, context: RunContext[Userdata]) -> BellaVistaAgent:
        """Hand over to the order taker once the caller wants to order."""
        return OrderTaker(context.userdata, chat_ctx=self.chat_ctx)


def _instructions(ud: Userdata) -> str:
    return instructions(ud, INSTRUCTIONS.format(restaurant=ud.menu.restaurant))


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
