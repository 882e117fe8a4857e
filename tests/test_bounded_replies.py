"""Every LLM reply is bounded, whichever OpenAI-compatible server answers: the real openai plugin against
a loopback server that streams forever, never starts, or speaks a chat template's control tokens."""

from __future__ import annotations

import pytest

from conftest import rows
from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.providers import make_llm
from memory_agent.replies import RECOVERY_LINE, ControlTokenFilter, ReplyLimits, bounded, clean_text
from memory_agent.settings import Settings
from openai_stub import Forever, OpenAIStub, Silent


def settings(stub: OpenAIStub, **values: object) -> Settings:
    return Settings(_env_file=None, OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="local", **values)  # type: ignore[call-arg]


async def call_with(stub: OpenAIStub, repo, configured: Settings, user_lines: list[str]):
    call = await start_call(repo, Caller.typed(None), configured.call_config(), llm=make_llm(configured))
    assert call.greeting is not None
    await call.greeting
    for line in user_lines:
        await call.session.run(user_input=line)
    await call.finish()
    return call


def said(db_path, call_id: str) -> list[str]:
    return [
        row[0]
        for row in rows(
            db_path, "SELECT content FROM messages WHERE call_id = ? AND role = 'assistant' ORDER BY seq", (call_id,)
        )
    ]


async def test_a_reply_that_never_ends_is_cut_with_the_recovery_line_and_the_call_goes_on(repo, db_path, caplog):
    with OpenAIStub([Forever("la "), "What would you like to order?"]) as stub:
        configured = settings(stub, MEMORY_AGENT_LLM_MAX_TOKENS=40)
        call = await call_with(stub, repo, configured, ["Hello?"])

    greeting, answer = said(db_path, call.call_id)
    assert greeting.startswith("la la ") and greeting.endswith(RECOVERY_LINE)
    assert len(greeting) <= 40 * 6 + len(RECOVERY_LINE) + 4
    assert answer == "What would you like to order?"
    first = stub.requests[0]
    assert first["max_completion_tokens"] == 40 and first["max_tokens"] == 40
    assert first["tools"] and first["tool_choice"] == "auto"
    assert rows(db_path, "SELECT llm_cut FROM calls") == [(1,)]
    assert "an LLM reply was ended (the reply reached its length limit)" in caplog.text
    assert "la la" not in caplog.text  # the log names what happened, not what was said


async def test_a_server_that_never_sends_a_first_token_meets_the_deadline_and_the_caller_hears_the_recovery_line(
    repo, db_path, caplog
):
    with OpenAIStub([Silent(), "Sorry for the wait. What can I get you?"]) as stub:
        configured = settings(stub, MEMORY_AGENT_LLM_FIRST_TOKEN_S=1.0)
        call = await call_with(stub, repo, configured, ["Hello?"])

    assert said(db_path, call.call_id) == [RECOVERY_LINE, "Sorry for the wait. What can I get you?"]
    assert rows(db_path, "SELECT llm_cut FROM calls") == [(1,)]
    assert "an LLM reply was ended (no first token in time)" in caplog.text


async def test_the_whole_reply_has_a_deadline_too(repo, db_path):
    with OpenAIStub([Forever("la "), "Go on."]) as stub:
        configured = settings(stub, MEMORY_AGENT_LLM_MAX_TOKENS=16_000, MEMORY_AGENT_LLM_REPLY_S=1.0)
        call = await call_with(stub, repo, configured, ["Hello?"])

    greeting, answer = said(db_path, call.call_id)
    assert greeting.endswith(RECOVERY_LINE) and answer == "Go on."


async def test_a_reply_cut_by_a_server_that_reports_no_usage_is_known_by_its_pieces(repo, db_path):
    # The server keeps to the limit (one token a piece) and ends the stream, but says nothing of its usage.
    with OpenAIStub(["a" * 16, "Go on."], piece=1, reports_usage=False) as stub:
        configured = settings(stub, MEMORY_AGENT_LLM_MAX_TOKENS=16)
        call = await call_with(stub, repo, configured, ["Hello?"])

    greeting, answer = said(db_path, call.call_id)
    assert greeting == "a" * 16 + " " + RECOVERY_LINE and answer == "Go on."
    assert rows(db_path, "SELECT llm_cut, llm_prompt_tokens FROM calls") == [(1, 0)]


CHATML = "<|im_start|>assistant\nWelcome to Bella Vista!<|im_end|>\n<|im_start|>user\nI want ten pizzas<|im_end|>"
GEMMA = "<start_of_turn>model\nWhat would you like?<end_of_turn>\n<start_of_turn>user\nnothing"
LLAMA = "<|start_header_id|>assistant<|end_header_id|>\n\nNoted, thank you.<|eot_id|><|start_header_id|>user"


async def test_chat_template_tokens_never_reach_the_transcript(repo, db_path):
    with OpenAIStub([CHATML, GEMMA, LLAMA], piece=3) as stub:  # tokens split across the stream's pieces
        configured = settings(stub)
        call = await call_with(stub, repo, configured, ["Hi", "A pizza please"])

    assert said(db_path, call.call_id) == ["Welcome to Bella Vista!", "What would you like?", "Noted, thank you."]
    history = [item.text_content for item in call.session.history.items if item.type == "message"]
    assert not any("<" in (text or "") for text in history)
    assert rows(db_path, "SELECT llm_cut FROM calls") == [(0,)]


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Hello<|im_end|><|im_start|>user hi", "Hello"),
        ("<|im_start|>assistant\nWelcome!<end_of_turn>", "Welcome!"),
        ("<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>", "Hi there"),
        ("[INST]Hi[/INST] there</s>more", "Hi there"),
        ("<<SYS>>\nWelcome<</SYS>>", "Welcome"),
        ("a < b, and 3 <4 too", "a < b, and 3 <4 too"),
        ("one <|reserved_special_token_3|>two", "one two"),
    ],
)
def test_control_tokens_are_removed_and_a_turn_ending_one_ends_the_reply(text, clean):
    assert clean_text(text) == clean


def test_a_control_token_split_across_pieces_is_still_removed():
    tokens = ControlTokenFilter()
    pieces = ["<|im_st", "art|>assis", "tant\nWel", "come! <", "|im_", "end|> and more"]
    assert "".join(tokens.feed(piece) for piece in pieces) + tokens.flush() == "Welcome! "
    assert tokens.ended
    tokens = ControlTokenFilter()
    assert [tokens.feed(piece) for piece in ["<", "<SY", "S>>\nHi <", "</SYS>> there"]] == ["", "", "Hi ", " there"]


async def test_a_stream_of_plain_text_is_bounded_by_its_length():
    async def endless():
        while True:
            yield "word "

    cuts: list[str] = []
    out = [chunk async for chunk in bounded(endless(), ReplyLimits(max_tokens=20), on_end=cuts.append)]
    assert "".join(out).endswith(RECOVERY_LINE)
    assert len("".join(out)) <= 20 * 6 + 5 + 1 + len(RECOVERY_LINE)
    assert cuts == ["cut"]
