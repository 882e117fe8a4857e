"""One phone call: build the session and its journal, start the Greeter, and finish exactly once at the end."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from livekit import rtc
from livekit.agents import AgentSession, RunResult, TurnHandlingOptions, llm, stt, tts, vad
from livekit.agents.metrics import AgentSessionUsage
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice import CloseEvent

from db import CallSnapshot, Message, Repository
from db.clock import from_epoch, utcnow, utcnow_iso
from memory_agent.agents import Greeter
from memory_agent.identity import Caller, participant_key, redact
from memory_agent.journal import Journal, in_background
from memory_agent.menu import Menu, load_menu
from memory_agent.replies import ReplyLimits
from memory_agent.restaurant import Restaurant
from memory_agent.settings import GuessLimits, VoiceTurn
from memory_agent.state import StaffLine, Userdata
from memory_agent.usage import measured

log = logging.getLogger("memory_agent")

DEFAULT_RECALL_BUDGET_S = 0.3  # how long the greeting may wait for the caller lookup
DEFAULT_MEMORY_WAIT_S = 10.0  # how long what needs the memory waits for it
DEFAULT_WRITE_BUDGET_S = 0.3  # how long a placed order or a turn waits for the database before the spool
T = TypeVar("T")


@dataclass
class Call:
    """A started call: ``session`` to talk to, ``finish()`` to close and write it (idempotent)."""

    session: AgentSession[Userdata]
    userdata: Userdata
    greeting: RunResult | None = None
    end_reason: str | None = None
    finished: bool = False
    closing: asyncio.Task[None] | None = None  # the finish started by the session closing
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def call_id(self) -> str:
        return self.userdata.call_id

    @property
    def journal(self) -> Journal:
        return self.userdata.journal

    def _on_close(self, event: CloseEvent) -> None:
        self.end_reason = self.end_reason or _reason_text(event.reason)
        if self.closing is None:
            self.closing = asyncio.create_task(self.finish(), name=f"finish-{self.call_id}")
            in_background(self.closing, f"finishing call {self.call_id} after its session closed")

    async def finish(self, reason: str | None = None) -> None:
        """Close the session if it is running, then write the call's final record once."""
        async with self._lock:
            if self.finished:
                return
            self.end_reason = self.end_reason or reason
            try:
                await self.session.aclose()
            finally:
                # Whatever the session did on its way out, the call is written (or spooled).
                written = await self.journal.close(self.end_reason or "finished")
            self.finished = True
            if self.userdata.forget_requested and self.userdata.identity is not None:
                await self.journal.forget(self.userdata.identity)
            where = "finalized" if written else "spooled"
            log.info("call %s of %s %s (%s)", self.call_id, redact(self.userdata.caller), where, self.end_reason)


@dataclass(frozen=True)
class CallConfig:
    """How the deployment runs every call, built from the settings by ``Settings.call_config()``; the defaults
    (the menu's restaurant open at all times, in UTC) serve the demo and tests.

    A phone number is only a hint of who calls, unless the deployment trusts caller ID
    (``trust_caller_id``) or the carrier attested the number (the ``Caller``'s own knowledge); other
    identities come from tokens the deployment signed. ``record`` is LiveKit's session recording, off
    unless asked for.

    The caller is looked up at once; the greeting waits for the lookup at most ``recall_budget_s``,
    and goes ahead without it past that: the memory then reaches the agents when it is back, and
    whatever needs it (the name check, a reorder, past orders) waits up to ``memory_wait_s``.
    Placing an order and each completed turn wait at most ``write_budget_s`` for the database
    before the spool keeps them. Every LLM reply is held to ``reply_limits``.
    """

    restaurant: Restaurant | None = None
    menu: Menu | None = None  # without a restaurant: this menu's restaurant (default: the packaged menu)
    timezone: str = "UTC"  # without a restaurant: the time zone of the always open one
    memory_enabled: bool = True
    recall_budget_s: float = DEFAULT_RECALL_BUDGET_S
    memory_wait_s: float = DEFAULT_MEMORY_WAIT_S
    write_budget_s: float = DEFAULT_WRITE_BUDGET_S
    trust_caller_id: bool = False
    guess_limits: GuessLimits = field(default_factory=GuessLimits)
    reply_limits: ReplyLimits = field(default_factory=ReplyLimits)
    turn: VoiceTurn = field(default_factory=VoiceTurn)
    close_transcript_timeout_s: float = 5.0
    record: bool = False
    clock: Callable[[], datetime] = utcnow


async def start_call(
    repo: Repository,
    caller: Caller,
    config: CallConfig | None = None,
    *,
    llm: llm.LLM,
    stt: stt.STT | None = None,
    tts: tts.TTS | None = None,
    vad: vad.VAD | None = None,
    room: rtc.Room | None = None,
    call_id: str | None = None,
    staff_line: StaffLine | None = None,
) -> Call:
    """Open the call's journal, build Userdata and the session, and start the Greeter, for ``caller`` and
    as ``config`` says (see ``CallConfig``). ``staff_line``: how this call reaches the staff's phone, if
    it can."""
    config = config or CallConfig()
    key = caller.key
    if key is not None and not caller.is_phone:
        key = participant_key(key)  # a caller's own identity: never the form of a number's or a household member's
    call_id = call_id or uuid.uuid4().hex
    restaurant = config.restaurant
    menu = config.menu or (restaurant.menu if restaurant is not None else load_menu())
    # A call without a restaurant file (the demo, tests) is for the menu's restaurant, open at all times.
    restaurant = restaurant or Restaurant.always_open(menu, timezone=config.timezone)
    ud = Userdata(
        journal=Journal(repo, call_id=call_id, caller=key, budget_s=config.write_budget_s),
        menu=menu,
        call_id=call_id,
        caller=key,
        started_at=utcnow_iso(),
        recall_budget_s=config.recall_budget_s,
        timezone=restaurant.timezone,  # one time zone, the restaurant's, for every date said or looked up
        verified=key is not None and (not caller.is_phone or caller.attested or config.trust_caller_id),
        by_phone=key is not None and caller.is_phone,
        memory_enabled=config.memory_enabled,
        guess_limits=config.guess_limits,
        memory_wait_s=config.memory_wait_s,
        restaurant=restaurant,
        clock=config.clock,
        staff_line=staff_line,
        reply_limits=config.reply_limits,
    )
    ud.open_at_start = ud.place.is_open(config.clock())
    if config.memory_enabled:
        ud.journal.look_up()
    # Without a VAD there is no audio to detect turns in (text chat, tests).
    turns = TurnHandlingOptions(turn_detection=None) if vad is None else turn_handling(config.turn)
    session: AgentSession[Userdata] = AgentSession(
        userdata=ud,
        llm=llm,
        stt=_given(stt),
        tts=_given(tts),
        vad=_given(vad),
        turn_handling=turns,
        session_close_transcript_timeout=config.close_transcript_timeout_s,
    )
    call = Call(session=session, userdata=ud)
    rows = Transcript()
    ud.journal.attach(lambda end_reason: call_snapshot(ud, session.history, end_reason, rows, session.usage))
    session.on("close", call._on_close)
    # The agent's every reply completes a turn: the turn is journaled then (tools journal their
    # own changes as they make them, and with them the caller's words that led to them).
    session.on("conversation_item_added", lambda event: _on_item(ud, event.item))
    log.info("call %s started for %s", ud.call_id, redact(key))
    try:
        if room is None:
            call.greeting = await session.start(Greeter(ud), capture_run=True, record=config.record)
        else:
            await session.start(Greeter(ud), room=room, record=config.record)
    except Exception:
        # The greeting failed (the LLM provider is down): the call still leaves its record.
        await call.finish("start_failed")
        raise
    return call


def turn_handling(turn: VoiceTurn) -> TurnHandlingOptions:
    """LiveKit's turn handling as chosen in the settings (the VAD's own silence is set where it is loaded)."""
    return TurnHandlingOptions(
        turn_detection=turn.turn_detection,
        endpointing={"min_delay": turn.min_endpointing_delay_s, "max_delay": turn.max_endpointing_delay_s},
        preemptive_generation={"enabled": turn.preemptive_generation},
    )


def call_snapshot(
    ud: Userdata,
    history: llm.ChatContext,
    end_reason: str | None = None,
    rows: Transcript | None = None,
    usage: AgentSessionUsage | None = None,
) -> CallSnapshot:
    """The call as it stands, from its state and the session's canonical history (and ``usage``, what it
    used of the providers); final with an end reason.

    ``rows``: the call's transcript rows so far, so that only new lines of the history are converted.
    """
    return CallSnapshot(
        call_id=ud.call_id,
        identity=ud.profile_key,
        household=ud.caller,
        started_at=ud.started_at,
        caller_name=ud.caller_name,
        email=ud.order.email,
        order=ud.order.order(final=end_reason is not None),
        feedback=ud.order.feedback(),
        messages=(rows or Transcript())(history),
        facts=list(ud.stated.values()),
        ended_at=None if end_reason is None else utcnow_iso(),
        end_reason=end_reason,
        outcome=None if end_reason is None else ud.outcome(),
        restaurant_open=ud.open_at_start,
        transfer_reason=ud.transfer_reason,
        transfer_status=ud.transfer_status,
        staff_messages=list(ud.staff_messages),
        **(ud.usage if usage is None else measured(ud.usage, usage)).model_dump(),
    )


def transcript(history: llm.ChatContext) -> list[Message]:
    """The canonical history as rows: messages, tool calls and outputs, and handoffs."""
    return Transcript()(history)


class Transcript:
    """The canonical history as rows, each built once per line of the history and kept while the line is
    unchanged: a checkpoint late in a long call converts only what is new."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[tuple[str, str | None, str, float], Message]] = {}

    def __call__(self, history: llm.ChatContext) -> list[Message]:
        rows: list[Message] = []
        agent = None  # until the first handoff names the Greeter
        for item in history.items:
            if item.type == "agent_handoff":
                agent = item.new_agent_id
            fields = _row_fields(item, agent)
            if fields is None:
                continue
            kept = self._rows.get(item.id)
            if kept is None or kept[0] != fields:
                role, by, content, created = fields
                kept = fields, Message(role=role, agent=by, content=content, created_at=from_epoch(created))
                self._rows[item.id] = kept
            rows.append(kept[1])
        return rows


def _row_fields(item: llm.ChatItem, agent: str | None) -> tuple[str, str | None, str, float] | None:
    """A history item's row as (role, agent, content, created_at); None for what the transcript leaves out."""
    if item.type == "message":
        if item.role in ("system", "developer"):
            return None
        return item.role, agent, item.text_content or "", item.created_at
    if item.type == "function_call":
        return "tool_call", agent, f"{item.name}({item.arguments})", item.created_at
    if item.type == "function_call_output":
        return "tool_output", agent, ("error: " if item.is_error else "") + item.output, item.created_at
    if item.type == "agent_handoff":
        return "handoff", agent, f"{item.old_agent_id or 'start'} -> {item.new_agent_id}", item.created_at
    return None


def _on_item(ud: Userdata, item: llm.ChatItem) -> None:
    if item.type == "message" and item.role == "assistant":
        ud.journal.checkpoint()


def _given(value: T | None) -> NotGivenOr[T]:
    return NOT_GIVEN if value is None else value


def _reason_text(reason: object) -> str:
    return str(getattr(reason, "value", reason))
