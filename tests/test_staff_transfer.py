"""A person when the caller needs one: a transfer to the staff's number, or a message when none can be made."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from livekit import api
from livekit.agents import APIConnectOptions, tts
from livekit.agents.testing import fake_job_context
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.voice import FunctionToolsExecutedEvent
from livekit.plugins import silero

from conftest import rows, scripted_call
from memory_agent.menu import load_menu
from memory_agent.providers import Providers
from memory_agent.restaurant import Restaurant
from memory_agent.scripted_llm import Say, ScriptedLLM, Step, ToolCall
from memory_agent.settings import Settings
from memory_agent.worker import entrypoint
from voice_io import Caller, PhoneRoom

STAFF = "+14155550100"
NUMBER = "+14155550134"
NOON = datetime(2026, 12, 8, 17, 0, tzinfo=UTC)  # noon in New York, on a Tuesday
WAIT_S = 60.0  # a guard against a hung call, never a measure of speed


class FakeLine:
    """The staff line of a call: records each transfer and answers as told."""

    def __init__(self, *, succeeds: bool) -> None:
        self.succeeds = succeeds
        self.numbers: list[str] = []
        self.called = asyncio.Event()

    async def transfer(self, to: str) -> bool:
        self.numbers.append(to)
        self.called.set()
        return self.succeeds


def place(**changes: object) -> Restaurant:
    config: dict[str, object] = {
        "name": "Bella Vista",
        "timezone": "America/New_York",
        "hours": {day: ["11:00-22:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "staff_phone": STAFF,
        "menu": load_menu(),
        **changes,
    }
    return Restaurant.model_validate(config)


def tools_done(session, name: str) -> asyncio.Event:
    """An event set once the session has run the tool ``name``."""
    done = asyncio.Event()

    def on_tools(event: FunctionToolsExecutedEvent) -> None:
        if any(call.name == name for call in event.function_calls):
            done.set()

    session.on("function_tools_executed", on_tools)
    return done


TRANSFER = [
    Say("Welcome to Bella Vista! May I have your name?"),
    ToolCall("transfer_to_staff", {"reason": "asked_for_person"}),
    Say("I'm putting you through to a member of staff now."),
]


async def test_a_caller_who_asks_for_a_person_is_put_through_to_the_staff(repo, db_path):
    line = FakeLine(succeeds=True)
    call, llm = await scripted_call(
        repo, NUMBER, TRANSFER, finish=False, restaurant=place(), clock=lambda: NOON, staff_line=line
    )
    await call.session.run(user_input="Can I talk to a person?")
    await asyncio.wait_for(line.called.wait(), WAIT_S)
    await call.journal.flush()
    await call.finish("participant_disconnected")

    assert line.numbers == [STAFF]
    assert "putting them through" in llm.requests[-1].chat_ctx.items[-1].output  # type: ignore[union-attr]
    assert rows(db_path, "SELECT outcome, transfer_reason, transfer_status FROM calls") == [
        ("transferred", "asked_for_person", "transferred")
    ]


async def test_a_failed_transfer_falls_back_to_a_message_with_the_callers_number(repo, db_path):
    line = FakeLine(succeeds=False)
    steps = [
        *TRANSFER,
        ToolCall("take_message", {"request": "Call me about a birthday booking for twelve"}),
        Say("Nobody could answer, so I've taken a message; they'll call you back."),
    ]
    call, llm = await scripted_call(
        repo, NUMBER, steps, finish=False, restaurant=place(), clock=lambda: NOON, staff_line=line
    )
    taken = tools_done(call.session, "take_message")
    await call.session.run(user_input="I want to talk to the manager")
    await asyncio.wait_for(taken.wait(), WAIT_S)
    await call.finish("participant_disconnected")

    assert "The transfer to the staff did not go through" in llm.requests[-2].instructions
    assert rows(db_path, "SELECT request, callback_number, reason, created_at FROM staff_messages") == [
        ("Call me about a birthday booking for twelve", NUMBER, "asked_for_person", "2026-12-08T17:00:00.000000+00:00")
    ]
    assert rows(db_path, "SELECT outcome, transfer_status FROM calls") == [("message_taken", "failed")]


async def test_without_a_staff_number_or_while_closed_a_message_is_taken_and_nobody_is_dialled(repo, db_path):
    line = FakeLine(succeeds=True)
    steps = [
        Say("Welcome!"),
        ToolCall("transfer_to_staff", {"reason": "complaint"}),
        Say("Nobody can take the call now. Shall I take a message?"),
        ToolCall("take_message", {"request": "Wrong order delivered", "callback_number": "(415) 555-0199"}),
        Say("Done."),
    ]
    closed_at = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # 4 AM in New York
    for restaurant, when in ((place(staff_phone=None), NOON), (place(), closed_at)):
        call, llm = await scripted_call(
            repo,
            NUMBER,
            steps,
            ["I want to complain", "yes, call me on 415 555 0199"],
            restaurant=restaurant,
            clock=lambda when=when: when,
            staff_line=line,
        )
        outputs = [i.output for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"]
        assert outputs[0].startswith("No transfer: ")
    assert line.numbers == []
    assert rows(db_path, "SELECT callback_number, reason FROM staff_messages") == [("+14155550199", "complaint")] * 2
    assert rows(db_path, "SELECT outcome, transfer_status, restaurant_open FROM calls ORDER BY started_at") == [
        ("message_taken", "unavailable", 1),
        ("message_taken", "unavailable", 0),
    ]


# -- through the worker's entrypoint, as LiveKit runs a call ----------------------------------------------


class FakeSip:
    """LiveKit's SIP service as the transfer uses it: keeps each request, answers with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[api.TransferSIPParticipantRequest] = []
        self.called = asyncio.Event()
        self.session: Callable[[], object] = lambda: None
        self.message_taken = asyncio.Event()

    async def transfer_sip_participant(
        self, transfer: api.TransferSIPParticipantRequest
    ) -> api.TransferSIPParticipantResponse:
        self.requests.append(transfer)
        self.called.set()
        # Listening before answering: whatever the agent does after a failed transfer comes after this.
        taken = tools_done(self.session(), "take_message")
        asyncio.get_running_loop().create_task(taken.wait()).add_done_callback(lambda _: self.message_taken.set())
        return api.TransferSIPParticipantResponse(status=self.status)  # type: ignore[arg-type]


class SilentTTS(tts.TTS):
    """A voice that says everything as a fifth of a second of silence."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=16000, num_channels=1)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _Silence(tts=self, input_text=text, conn_options=conn_options)


class _Silence(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=uuid.uuid4().hex, sample_rate=16000, num_channels=1, mime_type="audio/pcm")
        output_emitter.push(np.zeros(3200, dtype=np.int16).tobytes())
        output_emitter.flush()


async def _phone_call(tmp_path: Path, steps: list[Step], sip: FakeSip, until: asyncio.Event) -> Settings:
    """One SIP call through the worker's entrypoint, with the staff number configured; ends once ``until``."""
    restaurant_file = tmp_path / "restaurant.toml"
    restaurant_file.write_text(f'name = "Bella Vista"\nstaff_phone = "{STAFF}"\nmenu = "menu.toml"\n')
    (tmp_path / "menu.toml").write_text((Path(__file__).parents[1] / "memory_agent" / "menu.toml").read_text())
    settings = Settings(MEMORY_AGENT_DB=tmp_path / "memory.db", MEMORY_AGENT_RESTAURANT=restaurant_file)
    llm = ScriptedLLM(steps)
    room = PhoneRoom()
    caller = Caller(room, identity="sip_caller_1")
    caller.participant.attributes = {"sip.phoneNumber": NUMBER}
    shutdown: list[Callable[..., Awaitable[None]]] = []
    vad = silero.VAD.load()
    with fake_job_context(room=room) as ctx:  # type: ignore[arg-type]
        ctx.add_shutdown_callback = shutdown.append  # type: ignore[method-assign]
        sip.session = lambda: ctx.primary_session
        job = asyncio.create_task(
            entrypoint(
                ctx,
                providers=lambda _settings: Providers(llm, None, SilentTTS(), vad),  # type: ignore[arg-type]
                settings=settings,
                sip_service=lambda _ctx: sip,
            )
        )
        room.join(caller)
        async with asyncio.timeout(WAIT_S):
            await job
            await until.wait()
            await caller.hang_up()
            await ctx.primary_session.aclose()
            await asyncio.gather(*(cb("room empty") if inspect.signature(cb).parameters else cb() for cb in shutdown))  # type: ignore[call-arg]
    await caller.aclose()
    await room.aclose()
    return settings


async def test_the_worker_transfers_the_sip_caller_to_the_staff_number(tmp_path):
    sip = FakeSip(api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL)
    settings = await _phone_call(
        tmp_path,
        [ToolCall("transfer_to_staff", {"reason": "asked_for_person"}), Say("Putting you through now.")],
        sip,
        sip.called,
    )
    [request] = sip.requests
    assert (request.room_name, request.participant_identity, request.transfer_to) == (
        "call-room",
        "sip_caller_1",
        f"tel:{STAFF}",
    )
    assert rows(settings.db, "SELECT outcome, transfer_reason, transfer_status FROM calls") == [
        ("transferred", "asked_for_person", "transferred")
    ]


async def test_the_worker_takes_a_message_when_the_transfer_fails(tmp_path):
    sip = FakeSip(api.SIPTransferStatus.STS_TRANSFER_FAILED)
    settings = await _phone_call(
        tmp_path,
        [
            ToolCall("transfer_to_staff", {"reason": "cannot_help"}),
            Say("Putting you through now."),
            ToolCall("take_message", {"request": "Please call back about catering"}),
            Say("I've taken a message."),
        ],
        sip,
        sip.message_taken,
    )
    assert len(sip.requests) == 1
    assert rows(settings.db, "SELECT request, callback_number, reason FROM staff_messages") == [
        ("Please call back about catering", NUMBER, "cannot_help")
    ]
    assert rows(settings.db, "SELECT outcome, transfer_status FROM calls") == [("message_taken", "failed")]


async def test_a_web_caller_s_own_key_is_never_taken_for_a_number_to_call_back(repo, db_path):
    # A signed web identity that starts like a number is still no phone line: the agent must ask for one.
    steps = [
        Say("Welcome!"),
        ToolCall("transfer_to_staff", {"reason": "complaint"}),
        Say("Nobody can take the call now. Shall I take a message?"),
        ToolCall("take_message", {"request": "Wrong order delivered"}),
        Say("What number should they call?"),
    ]
    _, llm = await scripted_call(
        repo, "+alice", steps, ["I want to complain", "yes"], restaurant=place(staff_phone=None), clock=lambda: NOON
    )

    outputs = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"]
    assert outputs[-1].is_error and "no number to call them back" in outputs[-1].output
    assert rows(db_path, "SELECT count(*) FROM staff_messages") == [(0,)]
