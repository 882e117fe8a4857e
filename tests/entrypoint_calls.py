"""A call through the worker's real entrypoint in a fake job (no LiveKit server), up to the agent's greeting."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping

from livekit.agents import AgentSession
from livekit.agents.testing import fake_job_context
from test_staff_transfer import SilentTTS

from memory_agent.providers import Providers
from memory_agent.scripted_llm import ScriptedLLM
from memory_agent.settings import Settings
from memory_agent.worker import entrypoint
from voice_io import Caller, PhoneRoom

WAIT_S = 60.0  # a guard against a hung job, never a measure of speed


async def greeted_call(
    room: PhoneRoom,
    line: Caller,
    llm: ScriptedLLM,
    settings: Settings,
    vad: object,
    prewarmed: Mapping[str, object] | None = None,
) -> AgentSession:
    """``line`` joins ``room`` and the job runs the entrypoint (in a process prewarmed with ``prewarmed``)
    until the agent has greeted; the caller then hangs up and the job ends as LiveKit ends it."""
    shutdown: list[Callable[..., Awaitable[None]]] = []
    with fake_job_context(room=room) as ctx:  # type: ignore[arg-type]
        ctx.proc.userdata.update(prewarmed or {})
        ctx.add_shutdown_callback = shutdown.append  # type: ignore[method-assign]
        job = asyncio.create_task(
            entrypoint(ctx, providers=lambda _s: Providers(llm, None, SilentTTS(), vad), settings=settings)  # type: ignore[arg-type]
        )
        room.join(line)
        async with asyncio.timeout(WAIT_S):
            await job
            session = ctx.primary_session
            greeted = asyncio.Event()
            session.on("conversation_item_added", lambda e: e.item.role == "assistant" and greeted.set())
            if not any(m.role == "assistant" for m in session.history.messages()):
                await greeted.wait()
            await line.hang_up()
            await session.aclose()
            await asyncio.gather(*(cb("room empty") if inspect.signature(cb).parameters else cb() for cb in shutdown))  # type: ignore[call-arg]
    async with asyncio.timeout(WAIT_S):  # a hung hang-up fails the test, never the run
        await line.aclose()
        await room.aclose()
    return session
