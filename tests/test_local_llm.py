"""A whole call against a real local OpenAI-compatible server (off by default, like the live tests).

Start the server, then run the test against it (see the README, "Talking to it"):

    OPENAI_BASE_URL=http://127.0.0.1:8012/v1 .venv/bin/python -m pytest -m live tests/test_local_llm.py

Whatever the model says, each reply stays within its limits and free of chat-template tokens, and the
call's row counts its requests (and the tokens, where the server reports them).
"""

from __future__ import annotations

import re

import pytest

from conftest import rows
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.providers import make_llm
from memory_agent.replies import CHARS_PER_TOKEN, RECOVERY_LINE
from memory_agent.settings import Settings

pytestmark = pytest.mark.live

CONTROL = re.compile(r"<\|[a-z_]+\|>|<(?:start|end)_of_turn>|</s>")


async def test_a_call_through_a_local_server_is_bounded_clean_and_counted(repo, db_path):
    settings = Settings()
    if settings.openai_base_url is None:
        pytest.skip("start a local OpenAI-compatible server and set OPENAI_BASE_URL to run this test")
    call = await start_call(repo, Caller.typed("local-caller"), settings.call_config(), llm=make_llm(settings))
    assert call.greeting is not None
    await call.greeting
    for line in ["Hi, my name is Maria.", "Two margherita pizzas, please.", "That's all, please place the order."]:
        await call.session.run(user_input=line)
    await call.finish()

    said = [row[0] for row in rows(db_path, "SELECT content FROM messages WHERE role = 'assistant'")]
    tools = [row[0] for row in rows(db_path, "SELECT content FROM messages WHERE role = 'tool_call'")]
    used = rows(db_path, "SELECT llm_requests, llm_cut, llm_prompt_tokens, llm_completion_tokens FROM calls")
    print(f"replies: {said}\ntool calls: {tools or 'none'}\nrequests, cut, tokens in and out: {used}")  # with -s
    assert said and not any(CONTROL.search(text) for text in said)
    longest = settings.llm_max_tokens * CHARS_PER_TOKEN + 1 + len(RECOVERY_LINE)
    assert all(len(text) <= longest for text in said)
    # Tokens are counted as far as the server reports them (llama-cpp-python's streams report none).
    ((requests, _, prompt, completion),) = used
    assert requests >= 4 and prompt >= 0 and completion >= 0
