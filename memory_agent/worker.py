"""The LiveKit worker: one job per call, wired from Settings to start_call and finish()."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from livekit import rtc
from livekit.agents import AgentServer, JobContext, JobProcess
from livekit.plugins import silero

from db import open_repository
from memory_agent.call import Call, start_call
from memory_agent.identity import caller_key, redact
from memory_agent.providers import make_llm, make_stt, make_tts
from memory_agent.settings import Settings

log = logging.getLogger("memory_agent")


def prewarm(proc: JobProcess) -> None:
    """Load the VAD once per worker process (the model ships inside the silero wheel)."""
    proc.userdata["vad"] = silero.VAD.load()


server = AgentServer(setup_fnc=prewarm)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    settings = Settings()
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
    repo = await resources.enter_async_context(open_repository(settings.db, spool_dir=settings.spool_dir))
    await ctx.connect()
    participant = await ctx.wait_for_participant()
    key = caller_key(
        participant.identity,
        is_sip=participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
        attributes=participant.attributes,
    )
    call = await start_call(
        identity=key,
        repo=repo,
        llm=make_llm(settings),
        stt=make_stt(settings),
        tts=make_tts(settings),
        vad=ctx.proc.userdata.get("vad") or silero.VAD.load(),
        room=ctx.room,
        recall_budget_s=settings.recall_budget_s,
    )
    # Room names of phone calls carry the caller's number: log the job instead.
    log.info("serving %s in job %s", redact(key), ctx.job.id)
