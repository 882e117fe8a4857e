"""What the three agents share: typed access to the call's Userdata and the common instructions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Set
from functools import partial
from typing import Any

from livekit.agents import Agent, AgentSession, ModelSettings, RunContext, ToolError, function_tool, llm

from memory_agent.agents.staff import ReachesStaff
from memory_agent.journal import in_background
from memory_agent.memory import DATA_NOTE, clip, data_block, memory_text
from memory_agent.replies import bounded
from memory_agent.state import Userdata
from memory_agent.usage import count_reply
from memory_agent.verification import known_number, recall

PERSONA = (
    "You are the phone assistant of {restaurant}, a friendly {cuisine}restaurant. "
    "You are speaking on the phone: keep every reply to one or two short sentences, "
    "no lists, no markdown, no emoji. Prices are read from tools and the menu, never invented. "
    "Call the caller by the name in the caller data, if there is one, and never ask for it again. " + DATA_NOTE
)


KNOWN_NUMBER = (
    "This number has called us before, but who is speaking is not confirmed yet: welcome them back warmly "
    "and ask for their name, then save it with save_customer_name. Until then, never guess a name and say "
    "nothing about past orders."
)


# The last conversation turns an agent hands to the next: enough to go on, without the tools'
# calls and outputs of the agent before (the session's own history keeps the whole call).
CARRIED_ITEMS = 4


class BellaVistaAgent(ReachesStaff):
    """An agent of the chain; holds nothing but what it was constructed with."""

    carried_items = CARRIED_ITEMS

    def __init__(self, *, instructions: str, chat_ctx: llm.ChatContext | None = None) -> None:
        if chat_ctx is not None:
            chat_ctx = chat_ctx.copy(
                exclude_function_call=True, exclude_instructions=True, exclude_handoff=True, exclude_config_update=True
            ).truncate(max_items=self.carried_items)
        super().__init__(instructions=instructions, chat_ctx=chat_ctx)

    @property
    def userdata(self) -> Userdata:
        return self.session.userdata

    def fresh_instructions(self) -> str | None:
        """The instructions as the call now stands, for agents whose instructions tell what we remember."""
        return None

    # The tools that come and go with the step of the call.
    step_tools: frozenset[str] = frozenset({"take_message"})

    def not_now(self) -> Set[str]:
        """The names of this agent's tools that make no sense at this point of the call (never offered then)."""
        return set() if self.userdata.transfer_status in ("unavailable", "failed") else {"take_message"}

    def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterator[Any]:
        """Each request offers only the tools of this step of the call; every reply stays within the call's
        limits and free of chat-template tokens (see ``replies.bounded``)."""
        # The tools are read from the call's state when the request is made (a reply after a tool's output
        # included). The list is edited at once, before the reply is read: LiveKit runs a tool call from the
        # same list, so a tool left out cannot be called either. Editing the list, not the agent's tools,
        # keeps the history the model sees whole.
        hidden = self.not_now()
        tools[:] = [tool for tool in tools if getattr(tool, "id", None) not in hidden]
        # The tools of every step first, so the prefix a provider's prompt cache matches is as long as it can be.
        tools.sort(key=lambda tool: getattr(tool, "id", "") in self.step_tools)
        ud = self.userdata
        reply = Agent.default.llm_node(self, chat_ctx, tools, model_settings)
        return bounded(reply, ud.reply_limits, call_id=ud.call_id, on_end=partial(count_reply, ud.usage))

    @function_tool
    async def forget_me(self, context: RunContext[Userdata], confirmed: bool) -> str:
        """Erase all we remember of the caller, at their request.

        Args:
            confirmed: True once, told it erases their name, orders, feedback and this call, they agreed.
        """
        ud = context.userdata
        if not confirmed:
            raise ToolError("Ask the caller to confirm first; call forget_me with confirmed=true once they agree.")
        if ud.identity is None:
            raise ToolError(
                "We do not know who is calling yet, so nothing can be erased on this call: ask for their name"
                " first, or tell them the restaurant can erase their data on request."
            )
        ud.forget_requested = True
        return "Their memory will be erased when the call ends, this call included. Tell them so, then carry on."


def remember_when_back(session: AgentSession[Userdata]) -> None:
    """Recognize the caller once the lookup is back, and tell the agent then on the line (for its next turn)."""

    async def remember() -> None:
        await recall(session.userdata)
        with contextlib.suppress(RuntimeError):  # the call ended meanwhile
            agent = session.current_agent
            if isinstance(agent, BellaVistaAgent) and (text := agent.fresh_instructions()) is not None:
                await agent.update_instructions(text)

    in_background(asyncio.ensure_future(remember()), "recognizing the caller by the lookup")


def instructions(ud: Userdata, task: str, *, memory: bool = True) -> str:
    """An agent's instructions: the same for every caller up to its task (so a provider's prompt cache
    serves them across callers), then who is calling. ``memory``: the caller's memory, beyond their name
    (and whether their email is on file)."""
    cuisine = f"{ud.place.cuisine} " if ud.place.cuisine else ""
    parts = [PERSONA.format(restaurant=ud.menu.restaurant, cuisine=cuisine), task]
    if hours := hours_text(ud):
        parts.append(hours)
    facts = ud.facts("allergy") + ud.facts("preference")
    if memory and (ud.memory is not None or facts):
        parts.append("What we know about this caller:\n" + memory_text(ud.memory, facts))
    name = ud.memory.name if ud.memory is not None and ud.memory.name else ud.caller_name
    if name and not (memory and ud.memory is not None and ud.memory.name):
        parts.append(data_block({"name": clip(name, 60)}))
    if not memory and ((ud.memory is not None and ud.memory.email) or ud.order.email):
        parts.append("Their email for receipts is on file.")
    if known_number(ud):
        parts.append(KNOWN_NUMBER)
    return "\n\n".join(parts)


def hours_text(ud: Userdata) -> str | None:
    """Whether the restaurant is open now and until when, or when it opens next; None if it keeps no hours."""
    place = ud.place
    if place.hours is None:
        return None
    now = ud.clock()
    opening = place.opening_at(now)
    if opening is not None:
        return (
            f"The restaurant is open now, until {place.spoken(opening.end, now=now)} (its time). Placing an order"
            " gives its ready time; for a later pickup, use set_pickup_time first."
        )
    following = place.next_opening(now)
    why = place.closed_on(place.local(now).date())
    closed = f"The restaurant is closed now ({why})" if why else "The restaurant is closed now"
    if following is None:
        return closed + ", with no opening in sight: orders cannot be taken."
    return (
        f"{closed}; it opens next at {place.spoken(following.start, now=now)}, until"
        f" {place.spoken(following.end, now=now)}. Say so, and offer to take the order for pickup then: ask what"
        " time, and use set_pickup_time before placing it."
    )
