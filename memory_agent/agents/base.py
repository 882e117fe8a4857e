"""What the three agents share: typed access to the call's Userdata and the common instructions."""

from __future__ import annotations

from livekit.agents import Agent, RunContext, ToolError, function_tool

from memory_agent.memory import DATA_NOTE, clip, data_block, memory_text
from memory_agent.state import Userdata
from memory_agent.verification import known_number

PERSONA = (
    "You are the phone assistant of {restaurant}, a friendly Italian restaurant. "
    "You are speaking on the phone: keep every reply to one or two short sentences, "
    "no lists, no markdown, no emoji. Prices are read from tools and the menu, never invented."
)


KNOWN_NUMBER = (
    "This number has called us before, but who is speaking is not confirmed yet: welcome them back warmly "
    "and ask for their name, then save it with save_customer_name. Until then, never guess a name and say "
    "nothing about past orders."
)


class BellaVistaAgent(Agent):
    """An agent of the chain; holds nothing but what it was constructed with."""

    @property
    def userdata(self) -> Userdata:
        return self.session.userdata

    @function_tool
    async def forget_me(self, context: RunContext[Userdata], confirmed: bool) -> str:
        """Erase everything we remember about the caller, when they ask us to forget them.

        First tell them this erases their name, past orders, feedback and this call, and ask them to
        confirm; call this only after they said yes.

        Args:
            confirmed: True only if the caller has just confirmed they want to be forgotten.
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


def instructions(ud: Userdata, task: str, *, memory: bool = True) -> str:
    """An agent's instructions: the same for every caller up to its task (so a provider's prompt cache
    serves them across callers), then who is calling. ``memory``: the caller's memory, beyond their name."""
    parts = [PERSONA.format(restaurant=ud.menu.restaurant), task]
    facts = ud.facts("allergy") + ud.facts("preference")
    if memory and (ud.memory is not None or facts):
        parts.append("What we know about this caller:\n" + memory_text(ud.memory, facts))
    name = ud.memory.name if ud.memory is not None and ud.memory.name else ud.caller_name
    if name and not (memory and ud.memory is not None and ud.memory.name):
        parts.append(
            f"The caller's name: use it; never ask for it again.\n{data_block({'name': clip(name, 60)})}\n{DATA_NOTE}"
        )
    if known_number(ud):
        parts.append(KNOWN_NUMBER)
    return "\n\n".join(parts)
