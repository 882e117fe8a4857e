"""The LiveKit worker: one job per call, wired from Settings to start_call and finish()."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Protocol

from livekit import api, rtc
from livekit.agents import AgentServer, JobContext, JobExecutorType, JobProcess
from livekit.agents.vad import VAD
from livekit.agents.voice import ConversationItemAddedEvent, UserStateChangedEvent
from livekit.agents.worker import ServerEnvOption
from livekit.plugins import silero

from db import Repository
from memory_agent.call import Call, start_call
from memory_agent.identity import redact, sip_caller
from memory_agent.journal import in_background
from memory_agent.logs import protect_logs
from memory_agent.outbox import deliver_in_background
from memory_agent.process_database import ProcessDatabase, process_database
from memory_agent.providers import ProviderFactory, live_providers, text_providers
from memory_agent.restaurant import RestaurantError
from memory_agent.settings import Settings

log = logging.getLogger("memory_agent")

PHONE_ATTRIBUTE = "sip.phoneNumber"
# SIP attributes can reach the room after the participant does; a caller is worth a short wait.
SIP_ATTRIBUTES_WAIT_S = 2.0
# A caller silent for the session's away timeout (15 s) is asked once, then the line is closed.
STILL_THERE = "Are you still there?"
GOODBYE = "I can't hear you, so I'll hang up now. Please call us again. Goodbye!"
# LiveKit's default for the health endpoint: 8081 for `start`, a free port for `dev`.
LIVEKIT_PORT = ServerEnvOption(dev_default=0, prod_default=8081)


DATABASE = "database"


def prewarm(proc: JobProcess, *, settings: Settings | None = None) -> None:
    """Ready a call's process before its call arrives: load the VAD (the model ships inside the silero
    wheel), read the restaurant and its menu, and begin attaching to the database, which the call then
    finds open."""
    settings = settings or Settings()
    proc.userdata["vad"] = silero.VAD.load()
    with contextlib.suppress(RestaurantError):  # checked as the worker started; a call would say why
        settings.restaurant()  # read once per process, kept for its call
    proc.userdata[DATABASE] = process_database(settings)


class Worker(AgentServer):
    """LiveKit's server, holding the database open for as long as it runs.

    LiveKit runs each call in a process of its own that ends with the call; only this process outlives
    calls, so it does the database's work that is once per worker rather than once per call: it migrates
    the database before any call's process is started, replays the spool and closes calls left open by
    dead processes, applies the retention, and drains the host's spool (on PostgreSQL it also sweeps for
    other hosts' abandoned calls). A call's process only attaches (``memory_agent.process_database``).
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__(**options)
        self.settings = settings
        self.repository: Repository | None = None  # while it runs

    async def run(self, *, devmode: bool = False, unregistered: bool = False) -> None:
        async with self.settings.repository() as self.repository:
            try:
                await super().run(devmode=devmode, unregistered=unregistered)
            finally:
                self.repository = None


def tuned_vad(vad: VAD, settings: Settings) -> VAD:
    """Silero's silence before the end of speech as the settings choose (the job's process has its own VAD)."""
    if isinstance(vad, silero.VAD):
        vad.update_options(min_silence_duration=settings.vad_min_silence_s)
    return vad


def build_server(settings: Settings) -> AgentServer:
    """The worker from Settings: connection retries, drain timeout, health endpoint's address and, for
    explicit dispatch, its agent name."""
    server = Worker(
        settings,
        setup_fnc=prewarm,
        max_retry=settings.livekit_retries,
        drain_timeout=settings.drain_timeout_s,
        host=settings.http_host,
        port=LIVEKIT_PORT if settings.http_port is None else settings.http_port,
    )
    # Job processes import this module and call `entrypoint` by name, so it stays a module-level function.
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    # Placed orders reach the till from the long-lived worker process (the calls' processes come and go).
    server.on("worker_started", lambda: deliver_in_background(settings))
    return server


async def entrypoint(
    ctx: JobContext,
    *,
    providers: ProviderFactory = live_providers,
    settings: Settings | None = None,
    sip_attributes_wait_s: float = SIP_ATTRIBUTES_WAIT_S,
    sip_service: Callable[[JobContext], SipTransfers] | None = None,
) -> None:
    """One call: take the database its process opened, wait for the caller, start the call; finish it
    however the job ends."""
    settings = settings or Settings()
    resources = AsyncExitStack()
    call: Call | None = None

    async def finish_and_close() -> None:
        try:
            if call is not None:
                await call.finish("job_shutdown")
        finally:
            await resources.aclose()

    # Registered first, so the database is closed however the job ends.
    ctx.add_shutdown_callback(finish_and_close)
    protect_logs()  # the job process's handlers are LiveKit's: keep personal data out of them too
    repo = await job_repository(ctx, settings, resources)
    await ctx.connect()
    participant = await ctx.wait_for_participant()
    is_sip = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    attributes = await sip_attributes(ctx.room, participant, wait_s=sip_attributes_wait_s) if is_sip else None
    caller = sip_caller(
        participant.identity,
        is_sip=is_sip,
        attributes=attributes,
        attestation_attribute=settings.attestation_attribute,
        accepted=settings.accepted_attestations,
    )
    text = in_text_console()
    made = text_providers(settings) if text else providers(settings)
    staff_line = None
    if caller.is_phone:  # only a phone call can be put through to the staff's phone
        sip = sip_service or _livekit_sip
        staff_line = SipStaffLine(lambda: sip(ctx), room=ctx.room.name, participant=participant.identity)
    call = await start_call(
        repo,
        caller,
        settings.call_config(),
        llm=made.llm,
        stt=made.stt,
        tts=made.tts,
        vad=None if text else tuned_vad(made.vad or ctx.proc.userdata.get("vad") or silero.VAD.load(), settings),
        room=ctx.room,
        staff_line=staff_line,
    )
    if text:
        show_greeting(call)
    else:  # a typing user is not a silent caller
        hang_up_when_silent(ctx, call)
    # Room names of phone calls carry the caller's number: log the job instead.
    log.info("serving %s in job %s", redact(caller.key), ctx.job.id)


async def job_repository(ctx: JobContext, settings: Settings, resources: AsyncExitStack) -> Repository:
    """The repository the job's process attached to at prewarm; a job whose process was not prewarmed
    (a test's fake job) opens the database itself, as `memory-agent chat` does."""
    database = ctx.proc.userdata.get(DATABASE)
    if not isinstance(database, ProcessDatabase):
        return await resources.enter_async_context(settings.repository())
    if ctx.proc.executor_type == JobExecutorType.PROCESS:
        resources.push_async_callback(database.aclose)  # the process ends with its one job
    return await database.repository()


def in_text_console() -> bool:
    """Whether this job is `memory-agent console --text`: typed turns, so no speech to hear or make."""
    from livekit.agents.cli.cli import AgentsConsole

    console = AgentsConsole.get_instance()
    return console.enabled and console.console_mode == "text"


def show_greeting(call: Call) -> None:
    """Print the agent's first words in the typed console, which shows only the replies to what is typed."""
    from rich.console import Console
    from rich.text import Text

    session = call.session

    def on_item(event: ConversationItemAddedEvent) -> None:
        item = event.item
        if item.type == "message" and item.role == "assistant" and item.text_content:
            session.off("conversation_item_added", on_item)
            heading = Text.assemble(("  \u25cf ", "#6BCB77"), ("Agent", "bold #6BCB77"))
            lines = [Text(f"    {line}") for line in item.text_content.split("\n")]
            Console().print(Text(), heading, *lines, sep="\n")

    session.on("conversation_item_added", on_item)


class SipTransfers(Protocol):
    """What a transfer needs of LiveKit's SIP service (``livekit.api.SipService``)."""

    async def transfer_sip_participant(
        self, transfer: api.TransferSIPParticipantRequest
    ) -> api.TransferSIPParticipantResponse: ...


def _livekit_sip(ctx: JobContext) -> SipTransfers:
    return ctx.api.sip


class SipStaffLine:
    """Puts the SIP caller through to the staff: LiveKit transfers the participant (a SIP REFER)."""

    def __init__(self, sip: Callable[[], SipTransfers], *, room: str, participant: str) -> None:
        self._sip = sip  # made when a transfer is asked for: LiveKit's API client needs the server's URL
        self._room = room
        self._participant = participant

    async def transfer(self, to: str) -> bool:
        request = api.TransferSIPParticipantRequest(
            room_name=self._room, participant_identity=self._participant, transfer_to=f"tel:{to}", play_dialtone=False
        )
        response = await self._sip().transfer_sip_participant(request)
        # A status other than successful means the call was not transferred, even without an error.
        return response.status == api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL


def hang_up_when_silent(ctx: JobContext, call: Call) -> None:
    """Ask a caller gone silent whether they are still there; if they stay silent as long again, hang up."""
    session = call.session
    waiting: asyncio.Task[None] | None = None

    async def ask_then_hang_up() -> None:
        await session.say(STILL_THERE)
        await asyncio.sleep(session.options.user_away_timeout or 0)
        await session.say(GOODBYE, allow_interruptions=False)
        await call.finish("caller_silent")
        ctx.delete_room()  # ends the phone call for the caller too

    def on_user_state(event: UserStateChangedEvent) -> None:
        nonlocal waiting
        if event.new_state == "away" and waiting is None:
            waiting = asyncio.create_task(ask_then_hang_up())
            in_background(waiting, f"hanging up the silent call {call.call_id}")
        elif event.new_state == "speaking" and waiting is not None:
            waiting.cancel()
            waiting = None

    session.on("user_state_changed", on_user_state)


async def sip_attributes(room: rtc.Room, participant: rtc.RemoteParticipant, *, wait_s: float) -> Mapping[str, str]:
    """A SIP participant's attributes once its phone number has arrived, or as they are after ``wait_s``."""
    if isinstance(participant.attributes.get(PHONE_ATTRIBUTE), str):
        return participant.attributes
    arrived = asyncio.Event()

    def on_changed(_changed: list[str], changed: rtc.Participant) -> None:
        if changed.identity == participant.identity and PHONE_ATTRIBUTE in changed.attributes:
            arrived.set()

    room.on("participant_attributes_changed", on_changed)
    try:
        await asyncio.wait_for(arrived.wait(), wait_s)
    except TimeoutError:
        log.warning("no %s for SIP participant after %.1f s: serving without memory", PHONE_ATTRIBUTE, wait_s)
    finally:
        room.off("participant_attributes_changed", on_changed)
    return participant.attributes
