"""What each call used of the paid providers is written with the call, on both backends: the real openai
plugin against a loopback server, whose reported usage the call's row must hold."""

from __future__ import annotations

from livekit.agents.metrics import AgentSessionUsage, LLMModelUsage, STTModelUsage, TTSModelUsage

from db import CallSnapshot, Repository
from db.schema.models import CallUsage
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.providers import make_llm
from memory_agent.settings import Settings
from memory_agent.usage import measured
from openai_stub import OpenAIStub

USAGE = "llm_requests, llm_prompt_tokens, llm_cached_tokens, llm_completion_tokens, llm_cancelled, llm_cut"
START = "2026-12-08T23:00:00.000000+00:00"


async def _rows(repo: Repository, sql: str, *params: object) -> list[tuple]:
    return [tuple(row) for row in await repo.read(sql, params)]


async def test_a_calls_usage_row_holds_what_the_llm_reported(any_repo):
    script = [
        "Welcome to Bella Vista! May I have your name?",
        {"tool": "save_customer_name", "arguments": {"name": "Alice"}},
        "Nice to meet you, Alice! What would you like?",
    ]
    with OpenAIStub(script) as stub:
        configured = Settings(_env_file=None, OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="local")  # type: ignore[call-arg]
        call = await start_call(any_repo, Caller.typed("alice"), llm=make_llm(configured))
        assert call.greeting is not None
        await call.greeting
        await call.session.run(user_input="I'm Alice")
        await call.finish()

    reported = stub.usage
    assert len(reported) == len(stub.requests) == 3
    expected = (
        3,
        sum(u["prompt"] for u in reported),
        sum(u["cached"] for u in reported),
        sum(u["completion"] for u in reported),
        0,
        0,
    )
    assert await _rows(any_repo, f"SELECT {USAGE} FROM calls WHERE id = ?", call.call_id) == [expected]


async def test_usage_only_grows_a_late_replay_of_an_older_snapshot_undoes_nothing(any_repo):
    later = CallUsage(llm_requests=4, llm_prompt_tokens=9000, stt_audio_ms=61_500, tts_characters=420)
    earlier = CallUsage(llm_requests=2, llm_prompt_tokens=4000, stt_audio_ms=20_000, tts_characters=100)
    for usage in (later, earlier):
        await any_repo.save_call(CallSnapshot(call_id="c1", started_at=START, **usage.model_dump()))

    assert await _rows(any_repo, "SELECT llm_requests, llm_prompt_tokens, stt_audio_ms, tts_characters FROM calls") == [
        (4, 9000, 61_500, 420)
    ]


def test_the_sessions_usage_adds_tokens_speech_seconds_and_characters_to_the_replies_counted():
    session = AgentSessionUsage(
        model_usage=[
            LLMModelUsage(provider="openai", model="a", input_tokens=1000, input_cached_tokens=600, output_tokens=50),
            LLMModelUsage(provider="openai", model="b", input_tokens=10, output_tokens=5),
            STTModelUsage(provider="deepgram", model="nova-3", audio_duration=12.3456),
            TTSModelUsage(provider="openai", model="tts", characters_count=321),
        ]
    )
    counted = CallUsage(llm_requests=3, llm_cancelled=1, llm_cut=1)

    usage = measured(counted, session)

    assert usage == CallUsage(
        llm_requests=3,
        llm_cancelled=1,
        llm_cut=1,
        llm_prompt_tokens=1010,
        llm_cached_tokens=600,
        llm_completion_tokens=55,
        stt_audio_ms=12_346,
        tts_characters=321,
    )
    assert counted.llm_prompt_tokens == 0  # the call's own count is left as it was
