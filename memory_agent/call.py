"""One phone call: build the session, start the Greeter, and finalize exactly once at the end."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import TypeVar

from livekit import rtc
from livekit.agents import AgentSession, RunResult, TurnHandlingOptions, llm, stt, tts, vad
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice import CloseEvent

from db import CallRecord, MessageRecord, Repository, RepositoryError
from db.clock import from_epoch, utcnow_iso
from memory_agent.agents import Greeter
from memory_agent.identity import clean_identity, redact
from memory_agent.menu import Menu, load_menu
from memory_agent.state import Userdata
from memory_agent.store import in_background

log = logging.getLogger("memory_agent")

DEFAULT_RECALL_BUDGET_S = 0.3
T = TypeVar("T")


@dataclass
class Call:
    """A started call: ``session`` to talk to, ``finish()`` to close and write it (idempotent)."""

    session: AgentSession[Userdata]
    userdata: Userdata
    greeting: RunResult | None = None
    end_reason: str | None = None
    finished: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _close_task: asyncio.Task[None] | None = None

    @property
    def call_id(self) -> str:
        return self.userdata.call_id

    def _on_close(self, event: CloseEvent) -> None:
        self.end_reason = self.end_reason or _reason_text(event.reason)
        if self._close_task is None:
            self._close_task = asyncio.create_task(self.finish(), name=f"finish-{self.call_id}")
            in_background(self._close_task, f"finishing call {self.call_id} after its session closed")

    async def finish(self, reason: str | None = None) -> None:
        """Close the session if it is running, then write the call's complete record once."""
        async with self._lock:
            if self.finished:
                return
            self.end_reason = self.end_reason or reason
            await self.session.aclose()
            record = call_record(self.userdata, self.session.history, self.end_reason or "finished")
            try:
                await self.userdata.repo.finalize_or_spool(record)
            except RepositoryError as exc:
                log.error("could not finalize call %s: %s", self.call_id, exc)
                raise
            self.finished = True
            log.info("call %s of %s finalized (%s)", self.call_id, redact(self.userdata.identity), record.end_reason)


async def start_call(
    *,
    identity: str | None,
    repo: Repository,
    llm: llm.LLM,
    stt: stt.STT | None = None,
    tts: tts.TTS | None = None,
    vad: vad.VAD | None = None,
    room: rtc.Room | None = None,
    menu: Menu | None = None,
    call_id: str | None = None,
    memory_enabled: bool = True,
    recall_budget_s: float = DEFAULT_RECALL_BUDGET_S,
) -> Call:
    """Register the call, build Userdata and the session, and start the Greeter."""
    key = clean_identity(identity)
    started_at = utcnow_iso()
    ud = Userdata(
        repo=repo,
        menu=menu or load_menu(),
        call_id=call_id or uuid.uuid4().hex,
        identity=key,
        started_at=started_at,
        recall_budget_s=recall_budget_s,
        memory_enabled=memory_enabled,
    )
    ud.customer_id = await _open_call(ud)
    # Without a VAD there is no audio to detect turns in (text chat, tests).
    turns = TurnHandlingOptions(turn_detection=None) if vad is None else TurnHandlingOptions()
    session: AgentSession[Userdata] = AgentSession(
        userdata=ud, llm=llm, stt=_given(stt), tts=_given(tts), vad=_given(vad), turn_handling=turns
    )
    call = Call(session=session, userdata=ud)
    session.on("close", call._on_close)
    log.info("call %s started for %s", ud.call_id, redact(key))
    try:
        if room is None:
            call.greeting = await session.start(Greeter(ud), capture_run=True)
        else:
            await session.start(Greeter(ud), room=room)
    except Exception:
        # The greeting failed (the LLM provider is down): the call still leaves its record.
        await call.finish("start_failed")
        raise
    return call


async def _open_call(ud: Userdata) -> int | None:
    """Record the call's start within the greeting's budget; a busy database must not mute it.

    If the budget runs out the write goes on in the background, and either way finish() links
    the call to its caller by identity.
    """
    opening = asyncio.ensure_future(
        ud.repo.open_call(call_id=ud.call_id, identity=ud.identity, started_at=ud.started_at)
    )
    try:
        return await asyncio.wait_for(asyncio.shield(opening), timeout=ud.recall_budget_s)
    except TimeoutError:
        log.warning("recording the start of call %s took over %.0f ms; going on", ud.call_id, ud.recall_budget_s * 1000)
        in_background(opening, f"recording the start of call {ud.call_id}")
    except RepositoryError as exc:
        log.warning("could not record the start of call %s: %s", ud.call_id, exc)
    return None


def call_record(ud: Userdata, history: llm.ChatContext, end_reason: str) -> CallRecord:
    """Everything the call leaves behind, from its state and the session's canonical history."""
    return CallRecord(
        call_id=ud.call_id,
        customer_id=ud.customer_id,
        identity=ud.identity,
        started_at=ud.started_at,
        caller_name=ud.caller_name,
        email=ud.order.email,
        order=ud.order.to_record(final=True),
        feedback=ud.order.feedback_record(),
        messages=transcript(history),
        ended_at=utcnow_iso(),
        end_reason=end_reason,
    )


def transcript(history: llm.ChatContext) -> list[MessageRecord]:
    """The canonical history as rows: messages, tool calls and outputs, and handoffs."""
    rows: list[MessageRecord] = []
    agent = None  # until the first handoff names the Greeter
    for item in history.items:
        when = from_epoch(item.created_at)
        if item.type == "message":
            if item.role in ("system", "developer"):
                continue
            rows.append(MessageRecord(role=item.role, agent=agent, content=item.text_content or "", created_at=when))
        elif item.type == "function_call":
            rows.append(
                MessageRecord(role="tool_call", agent=agent, content=f"{item.name}({item.arguments})", created_at=when)
            )
        elif item.type == "function_call_output":
            content = ("error: " if item.is_error else "") + item.output
            rows.append(MessageRecord(role="tool_output", agent=agent, content=content, created_at=when))
        elif item.type == "agent_handoff":
            agent = item.new_agent_id
            rows.append(
                MessageRecord(
                    role="handoff",
                    agent=agent,
                    content=f"{item.old_agent_id or 'start'} -> {item.new_agent_id}",
                    created_at=when,
                )
            )
    return rows


def _given(value: T | None) -> NotGivenOr[T]:
    return NOT_GIVEN if value is None else value


def _reason_text(reason: object) -> str:
    return str(getattr(reason, "value", reason))
