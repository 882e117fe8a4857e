"""A person when the caller needs one: every agent can put the caller through to the staff, or take a message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import unicodedata
from collections.abc import Awaitable
from typing import Literal

import phonenumbers
from livekit.agents import Agent, RunContext, ToolError, function_tool

from db.clock import to_iso
from db.schema.models import StaffMessage
from memory_agent.journal import in_background
from memory_agent.memory import as_data
from memory_agent.state import StaffLine, Userdata

log = logging.getLogger("memory_agent")

TransferReason = Literal["asked_for_person", "complaint", "cannot_help", "misunderstanding", "other"]

MAX_REQUEST = 500
MAX_MESSAGES = 3

TRANSFER_FAILED = (
    "The transfer to the staff did not go through. Apologize, tell the caller nobody could take the call, and "
    "offer to take a message (what they need, and a number to call them back) with take_message."
)


class ReachesStaff(Agent):
    """The tools that hand a caller to a person, shared by every agent."""

    @function_tool
    async def transfer_to_staff(self, context: RunContext[Userdata], reason: TransferReason) -> str:
        """Put the caller through to a person, if they ask for one or you cannot help them (never for what
        the tools do)."""
        ud = context.userdata
        ud.transfer_reason = reason
        place = ud.place
        why_not = None
        if ud.staff_line is None or place.staff_phone is None:
            why_not = "nobody can be put through on this line"
        elif not place.is_open(ud.clock()):
            why_not = "the restaurant is closed, so nobody is there to answer"
        if why_not is not None:
            ud.transfer_status = "unavailable"
            ud.journal.checkpoint()
            return (
                f"No transfer: {why_not}. Tell the caller, and offer to take a message (what they need, and a"
                " number to call them back) with take_message."
            )
        line, number = ud.staff_line, place.staff_phone
        assert line is not None and number is not None
        # The caller hears this turn's reply to the end, then the call is transferred.
        handle = context.speech_handle
        transfer = asyncio.ensure_future(_transfer_after(self, ud, line, number, handle.wait_for_playout()))
        in_background(transfer, f"transferring call {ud.call_id}")
        return (
            "Tell the caller, in one short sentence, that you are putting them through to a member of staff now."
            " The transfer starts as soon as you have said it."
        )

    @function_tool
    async def take_message(
        self, context: RunContext[Userdata], request: str, callback_number: str | None = None
    ) -> str:
        """Take a message for the staff, once the caller said what they need.

        Args:
            request: What they need, in their words
            callback_number: Only if other than the one they call from
        """
        ud = context.userdata
        text = " ".join("".join(ch for ch in request if unicodedata.category(ch)[0] != "C").split())
        if not text:
            raise ToolError("The message is empty: ask the caller what they need the staff to do.")
        if len(text) > MAX_REQUEST:
            raise ToolError(f"Summarize what they need in at most {MAX_REQUEST} characters.")
        if len(ud.staff_messages) >= MAX_MESSAGES:
            raise ToolError("This call has left enough messages; tell the caller the staff will call back.")
        calling_from = ud.caller if ud.by_phone else None
        number = _callback(callback_number, calling_from) if callback_number else None
        number = number or calling_from
        if number is None:
            raise ToolError("We have no number to call them back: ask for one and call take_message with it.")
        ud.staff_messages.append(
            StaffMessage(
                request=text,
                callback_number=number,
                reason=ud.transfer_reason or "message",
                created_at=to_iso(ud.clock()),
            )
        )
        ud.journal.checkpoint()
        return f"Message taken; the staff will call back on {as_data(number)}. Tell the caller so."


async def _transfer_after(agent: Agent, ud: Userdata, line: StaffLine, number: str, spoken: Awaitable[None]) -> None:
    """Wait for the caller to hear the agent out, then transfer; on failure, offer a message."""
    await spoken
    try:
        done = await line.transfer(number)
    except Exception as exc:  # noqa: BLE001  (whatever went wrong, the caller gets a message taken)
        log.warning("call %s: the transfer to the staff failed (%s)", ud.call_id, type(exc).__name__)
        done = False
    ud.transfer_status = "transferred" if done else "failed"
    ud.journal.checkpoint()
    log.info("call %s: transfer to the staff %s", ud.call_id, ud.transfer_status)
    if not done:
        agent.session.generate_reply(instructions=TRANSFER_FAILED)


def _callback(number: str, calling_from: str | None) -> str:
    """A callback number in E.164; a national number is read in the country of the number the caller calls
    from (``calling_from``: theirs by phone, None otherwise)."""
    region = "US"
    if calling_from:
        with contextlib.suppress(phonenumbers.NumberParseException):
            region = phonenumbers.region_code_for_number(phonenumbers.parse(calling_from)) or region
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise ToolError("That callback number does not look right: ask the caller to say it again, with area code.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
