"""Who calls, as the worker knows it: a SIP participant is a phone caller (attested or not) whatever its
identity looks like, any other participant is a web caller; the call is told so, never left to guess it
from the shape of the key."""

from __future__ import annotations

from pathlib import Path

from entrypoint_calls import greeted_call
from livekit import rtc
from livekit.plugins import silero
from test_trust import MARIA, PERSONAL, maria_called_once, told

from conftest import open_all_hours
from db import open_repository
from memory_agent.call import CallConfig
from memory_agent.identity import Caller, sip_caller
from memory_agent.scripted_llm import Say, ScriptedLLM
from memory_agent.settings import Settings
from memory_agent.state import Userdata
from voice_io import Caller as Line
from voice_io import PhoneRoom

WAIT_S = 60.0  # a guard against a hung job, never a measure of speed
VERSTAT = "sip.h.x-twilio-verstat"


async def a_call(
    tmp_path: Path, identity: str, *, sip: bool, attributes: dict[str, str]
) -> tuple[Userdata, ScriptedLLM]:
    """One call through the worker's entrypoint from a participant who called once before as Maria (by
    phone, caller ID trusted), up to the agent's greeting; the participant then hangs up."""
    db = tmp_path / "memory.db"
    async with open_repository(db) as repo:
        await maria_called_once(repo)
    settings = Settings(
        MEMORY_AGENT_DB=db,
        MEMORY_AGENT_RESTAURANT=open_all_hours(tmp_path),
        MEMORY_AGENT_ATTESTATION_ATTRIBUTE=VERSTAT,
    )
    llm = ScriptedLLM([Say("Welcome to Bella Vista!")])
    room = PhoneRoom()
    line = Line(room, identity=identity)
    line.participant.attributes = attributes
    if not sip:
        line.participant.kind = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    session = await greeted_call(room, line, llm, settings, silero.VAD.load())
    return session.userdata, llm


async def test_a_sip_participant_not_named_like_a_number_is_an_unverified_phone_caller(tmp_path):
    ud, llm = await a_call(tmp_path, "sip_trunk-leg-7f3a", sip=True, attributes={"sip.phoneNumber": MARIA})

    assert (ud.caller, ud.verified) == (MARIA, False)
    assert ud.staff_line is not None  # a phone call can be put through to the staff
    assert not [word for word in PERSONAL if word in told(llm)]


async def test_a_sip_caller_whose_number_the_carrier_attested_is_remembered_at_once(tmp_path):
    attributes = {"sip.phoneNumber": MARIA, VERSTAT: "TN-Validation-Passed-A"}
    ud, llm = await a_call(tmp_path, "sip_trunk-leg-7f3a", sip=True, attributes=attributes)

    assert (ud.caller, ud.verified) == (MARIA, True)
    assert '"name": "Maria"' in llm.requests[0].instructions


async def test_a_web_participant_named_like_a_number_is_no_phone_caller(tmp_path):
    # Even with the trunk's attributes copied onto it: only a SIP participant is a phone caller.
    attributes = {"sip.phoneNumber": MARIA, VERSTAT: "A"}
    ud, llm = await a_call(tmp_path, MARIA, sip=False, attributes=attributes)

    assert (ud.caller, ud.verified, ud.staff_line) == (None, False, None)
    assert not [word for word in PERSONAL if word in told(llm)]


def test_the_participant_decides_the_kind_of_caller_not_the_key():
    assert sip_caller("sip_abc", is_sip=True, attributes={"sip.phoneNumber": "(415) 555-0134"}) == Caller(
        MARIA, "phone", attested=False
    )
    assert sip_caller("sip_abc", is_sip=True, attributes={}) == Caller(None, "phone")  # a withheld number
    assert sip_caller("user-7f3a", is_sip=False) == Caller("user-7f3a", "web")
    assert sip_caller(MARIA, is_sip=False) == Caller(None, "web")
    # An attestation without a number vouches for nobody.
    assert not sip_caller("sip_abc", is_sip=True, attributes={VERSTAT: "A"}, attestation_attribute=VERSTAT).attested


def test_the_call_configuration_is_built_from_the_settings_in_one_place(tmp_path):
    settings = Settings(
        MEMORY_AGENT_RESTAURANT=open_all_hours(tmp_path),
        MEMORY_AGENT_RECALL_BUDGET_MS=120,
        MEMORY_AGENT_TRUST_CALLER_ID=True,
        MEMORY_AGENT_NAME_TRIES_PER_CALL=2,
    )
    config = settings.call_config()

    assert (config.recall_budget_s, config.trust_caller_id, config.guess_limits.per_call) == (0.12, True, 2)
    assert config.restaurant == settings.restaurant()
    assert (config.turn, config.reply_limits) == (settings.voice_turn, settings.reply_limits)
    assert CallConfig().restaurant is None  # the menu's restaurant, open at all times
