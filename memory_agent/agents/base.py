"""What the three agents share: typed access to the call's Userdata and the common instructions."""

from __future__ import annotations

from livekit.agents import Agent

from memory_agent.memory import clip, memory_text
from memory_agent.state import Userdata

PERSONA = (
    "You are the phone assistant of {restaurant}, a friendly Italian restaurant. "
    "You are speaking on the phone: keep every reply to one or two short sentences, "
    "no lists, no markdown, no emoji. Prices are read from tools and the menu, never invented."
)


class BellaVistaAgent(Agent):
    """An agent of the chain; holds nothing but what it was constructed with."""

    @property
    def userdata(self) -> Userdata:
        return self.session.userdata


def caller_context(ud: Userdata) -> str:
    """The part of every agent's instructions that says who is calling."""
    parts = [PERSONA.format(restaurant=ud.menu.restaurant)]
    if ud.caller_name:
        parts.append(f'The caller\'s name is "{clip(ud.caller_name, 60)}". Use it; never ask for it again.')
    if ud.memory is not None:
        parts.append("What we remember about this caller:\n" + memory_text(ud.memory))
    return "\n\n".join(parts)
