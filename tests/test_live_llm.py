"""Against a real LLM (off by default): `pytest -m live` with OPENAI_API_KEY or OPENAI_BASE_URL set."""

from __future__ import annotations

import pytest

from conftest import rows
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.providers import make_llm
from memory_agent.settings import Settings

pytestmark = pytest.mark.live


@pytest.fixture
def live_llm():
    settings = Settings()
    if settings.missing("OPENAI_API_KEY") and settings.missing("OPENAI_BASE_URL"):
        pytest.skip("set OPENAI_API_KEY or OPENAI_BASE_URL to run the live tests")
    return make_llm(settings)


async def test_a_real_llm_takes_an_order_and_remembers_the_caller(repo, db_path, live_llm):
    call = await start_call(repo, Caller.typed("live-caller"), llm=live_llm)
    await call.greeting
    for line in [
        "Hi, my name is Maria.",
        "I'd like to order two Margherita pizzas, please.",
        "That's everything, yes please place the order.",
    ]:
        await call.session.run(user_input=line)
    await call.finish()

    assert rows(db_path, "SELECT name FROM customers") == [("Maria",)]
    assert rows(db_path, "SELECT menu_item, quantity FROM order_items") == [("margherita_pizza", 2)]

    again = await start_call(repo, Caller.typed("live-caller"), llm=live_llm)
    result = await again.greeting
    await again.finish()
    greeting = " ".join(e.item.text_content or "" for e in result.events if e.type == "message")
    assert "Maria" in greeting
