"""Who is calling: caller ID is a hint, the spoken name picks the profile.

A number may be spoofed, and may be shared by a household. Until the call is tied to a profile
(``ud.identity``), nothing personal reaches the LLM and nothing in any profile can change: the
call's own order is still stored, and joins the profile once the caller is known.
"""

from __future__ import annotations

from livekit.agents import ToolError

from db import CustomerMemory
from db.models import name_key
from memory_agent.state import Userdata


def recognize(ud: Userdata, profiles: tuple[CustomerMemory, ...] | None) -> None:
    """After the lookup: who the caller is, as far as may be said before they give their name."""
    ud.profiles = profiles
    if ud.caller is None:
        return
    if profiles is None:  # the lookup failed: a vouched-for caller keeps their number's profile
        ud.identity = ud.caller if ud.verified else None
    elif not profiles:
        ud.identity = ud.caller  # a number never heard before: its first profile, nothing to protect
    elif ud.verified and len(profiles) == 1:
        know(ud, profiles[0])


async def recall(ud: Userdata) -> None:
    """Wait (at most ``ud.memory_wait_s``) for the caller lookup begun with the call, and recognize
    the caller by it, unless that was done already."""
    if ud.caller is None or ud.profiles is not None or not ud.memory_enabled:
        return
    found = await ud.journal.household(wait_s=ud.memory_wait_s)
    if ud.profiles is None and (found is not None or ud.identity is None):
        recognize(ud, found)


def know(ud: Userdata, profile: CustomerMemory) -> None:
    ud.identity, ud.memory, ud.verified = profile.key, profile, True
    ud.caller_name = profile.name or ud.caller_name


def known_number(ud: Userdata) -> bool:
    """The number has profiles, but the call is not tied to one of them yet."""
    return bool(ud.profiles) and ud.identity is None


async def identify(ud: Userdata, name: str) -> str:
    """Tie the call to the profile the spoken ``name`` picks on this number, or start one; says which."""
    if ud.memory is not None:
        if not ud.memory.name:
            ud.caller_name = name  # a known profile that never had a name
        elif name_key(name) != name_key(ud.memory.name):
            raise ToolError(
                "This caller is already identified by their number and name; names are not changed on the phone."
            )
        return "known"
    if ud.identity is not None or ud.caller is None:
        ud.caller_name = name  # a new caller (or an anonymous one, whose name stays with this call)
        return "new"
    if ud.profiles is None:  # the greeting went ahead without the lookup: the caller is worth the wait now
        await recall(ud)
        if ud.profiles is None:
            ud.caller_name = name
            return "new"
        return await identify(ud, name)  # as if the lookup had been back before the greeting
    profiles = ud.profiles
    wanted = name_key(name)
    match = next((p for p in profiles if p.name and name_key(p.name) == wanted), None)
    if match is not None:
        know(ud, match)
        return "known"
    keys = {p.key for p in profiles}
    ud.identity = next(k for n in range(1, len(keys) + 2) if (k := _profile_key(ud.caller, n)) not in keys)
    ud.caller_name, ud.verified = name, True
    return "new"


def _profile_key(caller: str, n: int) -> str:
    """The n-th profile on a number: the number itself, then ``+15551234567#2``, ``#3`` ..."""
    return caller if n == 1 else f"{caller}#{n}"
