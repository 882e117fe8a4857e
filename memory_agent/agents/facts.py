"""What a caller tells us about themselves: allergies and preferences, offered by the agents a
caller would say them to. A statement protects this call's order at once, and is remembered
(with the call it came from) once the caller is known; the newest word on a topic wins."""

from __future__ import annotations

import unicodedata

from livekit.agents import RunContext, ToolError, function_tool

from db.schema.models import MAX_FACT, MAX_TOPIC, FactKind
from memory_agent.agents.base import BellaVistaAgent
from memory_agent.allergens import in_order, read_allergies
from memory_agent.memory import as_data
from memory_agent.menu import normalize
from memory_agent.state import Userdata


class NotesFacts(BellaVistaAgent):
    """An agent the caller can tell their allergies and preferences to."""

    @function_tool
    async def remember_allergy(self, context: RunContext[Userdata], allergen: str) -> str:
        """Note the food allergies the caller states, all in one call.

        Args:
            allergen: As said, e.g. "pine nuts", "nuts and dairy"
        """
        ud = context.userdata
        named = read_allergies(clean_fact(allergen, MAX_TOPIC, "allergen"))
        if not named:
            raise ToolError("That names no food: ask what they are allergic to.")
        for said in named:
            for topic in said.allergens or (said.topic,):
                ud.state_fact("allergy", topic, said.said)
        ud.journal.checkpoint()
        checked = in_order(a for said in named for a in said.allergens)
        unchecked = list(dict.fromkeys(said.topic for said in named if not said.allergens))
        reply = [f"Noted: allergic to {', '.join(as_data(topic) for topic in [*checked, *unchecked])}."]
        if checked:
            found = [
                (item.name, has) for item in ud.menu.items if (has := in_order(set(item.allergens) & set(checked)))
            ]
            dishes = [name if len(checked) == 1 else f"{name} ({', '.join(has)})" for name, has in found]
            reply.append(
                f"In: {', '.join(dishes)}."
                if dishes
                else f"Nothing on our menu has {'it' if len(checked) == 1 else 'them'}."
            )
        for said in named:
            if said.ask:
                reply.append(
                    f"{as_data(said.said)} can mean {' or '.join(said.allergens)}: all are noted. If it matters for"
                    " what they order, ask which they mean, and forget_allergy any they can eat."
                )
        if unchecked:
            reply.append(
                f"Our menu is not checked for {as_data(unchecked)}: tell the caller we cannot say which dishes have"
                " it. Every dish they order needs their go-ahead (accept_allergens=true); the kitchen sees it."
            )
        if not ud.order.placed:
            ordered = [
                line.name
                for line in ud.order.items
                if ud.allergens_in(line) or ud.unchecked_allergies(line.accepted_allergens)
            ]
            if ordered:
                reply.append(f"The order has {', '.join(ordered)}: ask whether to remove it.")
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
        said = clean_fact(allergen, MAX_TOPIC, "allergen")
        topics = [t for named in read_allergies(said) for t in named.allergens or (named.topic,)]
        # An allergy kept in the caller's words before the vocabulary knew them has those words as topic.
        return _withdraw(context.userdata, "allergy", [*topics, normalize(said)])

    @function_tool
    async def forget_preference(self, context: RunContext[Userdata], about: str) -> str:
        """Drop a preference they no longer have."""
        topic = normalize(clean_fact(about, MAX_TOPIC, "subject"))
        return _withdraw(context.userdata, "preference", [topic])


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


def _withdraw(ud: Userdata, kind: FactKind, topics: list[str]) -> str:
    """The caller no longer holds what they said on ``topics``: kept as history, never told again."""
    held = [fact.topic for fact in ud.facts(kind)]
    dropped = [topic for topic in dict.fromkeys(topics) if topic in held]
    if not dropped:
        said = as_data(", ".join(topics))
        raise ToolError(f"No {kind} {said} on record. On record: {as_data(held) if held else 'nothing'}.")
    for topic in dropped:
        ud.state_fact(kind, topic, None)
    ud.journal.checkpoint()
    return f"Dropped the {kind} {', '.join(as_data(topic) for topic in dropped)}."


def _kept(ud: Userdata) -> str:
    if ud.identity is None or not ud.memory_enabled:
        return "It holds for this call only: we do not know who is calling."
    return "Remembered for their next calls."
