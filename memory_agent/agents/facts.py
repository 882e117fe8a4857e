"""What a caller tells us about themselves: allergies and preferences, offered by the agents a
caller would say them to. A statement protects this call's order at once, and is remembered
(with the call it came from) once the caller is known; the newest word on a topic wins."""

from __future__ import annotations

import unicodedata

from livekit.agents import RunContext, ToolError, function_tool

from db.models import MAX_FACT, MAX_TOPIC, FactKind
from memory_agent.agents.base import BellaVistaAgent
from memory_agent.allergens import ALLERGENS, normalize_allergen
from memory_agent.memory import as_data
from memory_agent.menu import normalize
from memory_agent.state import Userdata


class NotesFacts(BellaVistaAgent):
    """An agent the caller can tell their allergies and preferences to."""

    @function_tool
    async def remember_allergy(self, context: RunContext[Userdata], allergen: str) -> str:
        """Note a food allergy the caller states.

        Args:
            allergen: As said, e.g. "pine nuts"
        """
        ud = context.userdata
        said = clean_fact(allergen, MAX_TOPIC, "allergen")
        topic = allergy_topic(said)
        ud.state_fact("allergy", topic, said)
        ud.journal.checkpoint()
        reply = [f"Noted: allergic to {as_data(topic)}."]
        if topic in ALLERGENS:
            found = [item.name for item in ud.menu.items if topic in item.allergens]
            reply.append(f"In: {', '.join(found)}." if found else "Nothing on our menu has it.")
            ordered = [line.name for line in ud.order.items if topic in ud.allergens_in(line)]
            if ordered and not ud.order.placed:
                reply.append(f"The order has {', '.join(ordered)}: ask whether to remove it.")
        else:
            reply.append("Our menu does not track it: the kitchen will see it on the order.")
        return " ".join([*reply, _kept(ud)])

    @function_tool
    async def remember_preference(self, context: RunContext[Userdata], about: str, preference: str) -> str:
        """Note a lasting preference; it replaces one on the same subject.

        Args:
            about: e.g. "crust"
            preference: e.g. "well done"
        """
        ud = context.userdata
        topic = normalize(clean_fact(about, MAX_TOPIC, "subject"))
        ud.state_fact("preference", topic, clean_fact(preference, MAX_FACT, "preference"))
        ud.journal.checkpoint()
        return f"Noted their preference about {as_data(topic)}. {_kept(ud)}"


class KeepsFacts(NotesFacts):
    """An agent that also drops what a caller no longer holds (the OrderTaker; the Greeter only notes,
    since every tool offered is sent with every request)."""

    @function_tool
    async def forget_allergy(self, context: RunContext[Userdata], allergen: str) -> str:
        """Drop an allergy they no longer have."""
        topic = allergy_topic(clean_fact(allergen, MAX_TOPIC, "allergen"))
        return _withdraw(context.userdata, "allergy", topic)

    @function_tool
    async def forget_preference(self, context: RunContext[Userdata], about: str) -> str:
        """Drop a preference they no longer have."""
        topic = normalize(clean_fact(about, MAX_TOPIC, "subject"))
        return _withdraw(context.userdata, "preference", topic)


def allergy_topic(said: str) -> str:
    """An allergy's topic: its name in the menu's vocabulary, or else the caller's words, folded."""
    return normalize_allergen(said) or normalize(said)


def clean_fact(text: object, limit: int, what: str) -> str:
    """A short, printable statement, or a ToolError that says how to fix it."""
    if not isinstance(text, str):
        raise ToolError(f"The {what} must be text.")
    cleaned = " ".join("".join(ch for ch in text if unicodedata.category(ch)[0] != "C").split())
    if not cleaned or not normalize(cleaned):
        raise ToolError(f"The {what} is empty: ask the caller again.")
    if len(cleaned) > limit:
        raise ToolError(f"Give the {what} in at most {limit} characters.")
    return cleaned


def _withdraw(ud: Userdata, kind: FactKind, topic: str) -> str:
    """The caller no longer holds what they said on ``topic``: kept as history, never told again."""
    held = [fact.topic for fact in ud.facts(kind)]
    if topic not in held:
        raise ToolError(f"No {kind} {as_data(topic)} on record. On record: {as_data(held) if held else 'nothing'}.")
    ud.state_fact(kind, topic, None)
    ud.journal.checkpoint()
    return f"Dropped the {kind} {as_data(topic)}."


def _kept(ud: Userdata) -> str:
    if ud.identity is None or not ud.memory_enabled:
        return "It holds for this call only: we do not know who is calling."
    return "Remembered for their next calls."
