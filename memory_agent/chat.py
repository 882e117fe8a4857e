"""`memory-agent chat`: the real agent chain in a terminal, one line of standard input per turn."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

from db.safe_url import redact_url
from memory_agent.call import start_call
from memory_agent.demo import print_events
from memory_agent.identity import Caller
from memory_agent.providers import make_llm
from memory_agent.settings import Settings


async def run_chat(settings: Settings, identity: str) -> None:
    llm = make_llm(settings)
    interactive = sys.stdin.isatty()
    async with settings.repository() as repo:
        # A typed identity is no caller ID: a number typed here is never trusted. No room, nothing to record.
        config = replace(settings.call_config(), trust_caller_id=False, record=False)
        call = await start_call(repo, Caller.typed(identity), config, llm=llm)
        try:
            assert call.greeting is not None
            print_events(await call.greeting, print)
            while True:
                if interactive:
                    print("you> ", end="", flush=True)
                # Bytes, decoded leniently: a stray invalid byte must not end the call.
                line = (await asyncio.to_thread(sys.stdin.buffer.readline)).decode("utf-8", errors="replace")
                if not line:
                    break
                if line.strip():
                    print_events(await call.session.run(user_input=line.strip()), print)
        finally:
            await call.finish("caller_hung_up")
    print(f"(call saved to {redact_url(str(settings.db))})")
