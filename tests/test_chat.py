"""`memory-agent chat` against a local OpenAI-compatible server: the real openai plugin, piped input."""

from __future__ import annotations

import socket
import subprocess
import sys

from conftest import rows
from openai_stub import OpenAIStub
from test_cli import CLEAN_ENV, run


def chat(tmp_path, stub: OpenAIStub, lines: str):
    env = {**CLEAN_ENV, "OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "local"}
    return run("chat", "--identity", "alice", cwd=tmp_path, env=env, stdin=lines)


def test_piped_chat_saves_the_call_and_the_next_chat_remembers(tmp_path):
    first = [
        "Welcome to Bella Vista! What's your name?",
        {"tool": "save_customer_name", "arguments": {"name": "Alice"}},
        "Nice to meet you, Alice!",
    ]
    with OpenAIStub(first) as stub:
        result = chat(tmp_path, stub, "I'm Alice\n")

    assert result.returncode == 0, result.stderr
    assert "Welcome to Bella Vista" in result.stdout
    assert "Nice to meet you, Alice!" in result.stdout
    db = tmp_path / "memory.db"
    assert rows(db, "SELECT name FROM customers WHERE participant_identity = 'alice'") == [("Alice",)]
    # end of input hung up: the call is finalized with the caller's words
    assert rows(db, "SELECT content FROM messages WHERE role = 'user'") == [("I'm Alice",)]
    assert rows(db, "SELECT end_reason FROM calls") == [("caller_hung_up",)]

    with OpenAIStub(["Welcome back, Alice!"]) as stub:
        result = chat(tmp_path, stub, "")

    assert result.returncode == 0, result.stderr
    system = stub.requests[0]["messages"][0]
    assert system["role"] in ("system", "developer")
    assert '<caller-data>\n{"name": "Alice"' in system["content"]
    tools = {t["function"]["name"] for t in stub.requests[0]["tools"]}
    assert tools == {  # take_message once a transfer did not go through; preferences with the order taker
        "save_customer_name",
        "transfer_to_order_taker",
        "forget_me",
        "remember_allergy",
        "transfer_to_staff",
    }


def test_chat_with_an_unreachable_llm_says_so_in_one_line_and_keeps_the_call(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**CLEAN_ENV, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "local"}

    result = run("chat", "--identity", "alice", cwd=tmp_path, env=env, stdin="Hello?\n")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("memory-agent: error: the LLM did not answer")
    assert "Traceback" not in result.stderr
    assert rows(tmp_path / "memory.db", "SELECT end_reason FROM calls") == [("start_failed",)]


def test_invalid_utf8_on_standard_input_is_kept_as_replacement_characters(tmp_path):
    with OpenAIStub(["Welcome to Bella Vista!", "Noted."]) as stub:
        env = {**CLEAN_ENV, "OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "local"}
        result = subprocess.run(
            [sys.executable, "-m", "memory_agent", "chat", "--identity", "alice"],
            cwd=tmp_path,
            env=env,
            input=b"caf\xe9 au lait \xff please\n",
            capture_output=True,
            timeout=120,
        )

    assert result.returncode == 0, result.stderr
    said = rows(tmp_path / "memory.db", "SELECT content FROM messages WHERE role = 'user'")
    assert said == [("caf\ufffd au lait \ufffd please",)]
    assert rows(tmp_path / "memory.db", "SELECT end_reason FROM calls") == [("caller_hung_up",)]
