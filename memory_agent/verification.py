"""Who is calling: caller ID is a hint, the spoken name picks the profile.

A number may be spoofed, and may be shared by a household. Until the call is tied to a profile
(``ud.identity``), nothing personal reaches the LLM and nothing in any profile can change: the
call's own order is still stored, and joins the profile once the caller is known.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from livekit.agents import ToolError

from db import CustomerMemory
from db.clock import to_iso, utcnow
from db.schema.models import name_key
from memory_agent.identity import redact
from memory_agent.state import Userdata

log = logging.getLogger("memory_agent")


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
    """The number has profiles, but the call is not tied to one of them yet (nor barred from them)."""
    return bool(ud.profiles) and ud.identity is None and ud.memory_enabled


async def identify(ud: Userdata, name: str) -> str:
    """Tie the call to the profile the spoken ``name`` picks on this number, or start one; says which:
    ``known``, ``new``, or ``refused`` (the number used up its tries: the call goes on without memory).

    Names said in one turn are compared one at a time, in the order they were said."""
    async with ud.naming:
        return await _identify(ud, name)


async def _identify(ud: Userdata, name: str) -> str:
    if ud.memory is not None:
        return _same_person(ud, name)
    if (ud.identity is not None and ud.profile_key is not None) or ud.caller is None or not ud.memory_enabled:
        ud.caller_name = name  # a new caller (or an anonymous one, whose name stays with this call)
        return "new"
    if ud.profiles is None:  # the greeting went ahead without the lookup: the caller is worth the wait now
        await recall(ud)
        if ud.profiles is None:
            ud.caller_name = name
            return "new"
        return await _identify(ud, name)  # as if the lookup had been back before the greeting
    profiles = ud.profiles
    if ud.wrong_names >= ud.guess_limits.per_call or not await _tries_left_today(ud):
        return _refuse(ud, name)
    wanted = name_key(name)
    match = next((p for p in profiles if p.name and name_key(p.name) == wanted), None)
    if match is not None:
        ud.provisional = False
        know(ud, match)
        return "known"
    ud.wrong_names += 1
    ud.journal.note_identity_attempt("wrong_name")
    # A new person of the household; their profile is written only once it holds something, so a
    # wrong guess leaves none (and several names in one call make one at most).
    keys = {p.key for p in profiles}
    ud.identity = next(k for n in range(1, len(keys) + 2) if (k := _profile_key(ud.caller, n)) not in keys)
    ud.caller_name, ud.verified, ud.provisional = name, True, True
    return "new"


def _same_person(ud: Userdata, name: str) -> str:
    assert ud.memory is not None
    if not ud.memory.name:
        ud.caller_name = name  # a known profile that never had a name
    elif name_key(name) != name_key(ud.memory.name):
        raise ToolError(
            "This caller is already identified by their number and name; names are not changed on the phone."
        )
    return "known"


async def _tries_left_today(ud: Userdata) -> bool:
    """Whether the number has tried fewer wrong names than the day's limit (a count that fails: no)."""
    since = to_iso(utcnow() - timedelta(days=1))
    used = await ud.journal.wrong_names_since(since, budget_s=max(ud.recall_budget_s, 1.0))
    return used is not None and used < ud.guess_limits.per_day


def _refuse(ud: Userdata, name: str) -> str:
    """The number used up its tries: no profile is picked or started, and the owner sees the attempt."""
    ud.identity, ud.memory, ud.provisional, ud.memory_enabled = None, None, False, False
    ud.caller_name = name  # said back on this call only
    ud.journal.note_identity_attempt("refused")
    log.warning("call %s: too many names tried on %s; going on without memory", ud.call_id, redact(ud.caller))
    return "refused"


def _profile_key(caller: str, n: int) -> str:
    """The n-th profile on a number: the number itself, then ``+15551234567#2``, ``#3`` ..."""
    return caller if n == 1 else f"{caller}#{n}"
