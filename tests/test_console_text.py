"""`memory-agent console --text` in a terminal, offline: an OpenAI-compatible stub on loopback, no speech keys."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

from conftest import rows
from openai_stub import OpenAIStub

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LIVEKIT_", "DEEPGRAM_", "MEMORY_"))}
GUARD_S = 120.0  # against a hung console, never a measure of speed
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process on a pseudo-terminal, read until what the test waits for appears."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.fd, child = pty.openpty()
        self.process = subprocess.Popen(args, cwd=cwd, env=env, stdin=child, stdout=child, stderr=child)
        os.close(child)
        self.seen = ""

    def wait_for(self, text: str) -> str:
        while text not in self.screen:
            ready, _, _ = select.select([self.fd], [], [], GUARD_S)
            assert ready, f"no {text!r} in:\n{self.screen[-2000:]}"
            try:
                self.seen += os.read(self.fd, 65536).decode(errors="replace")
            except OSError:  # the process closed the terminal
                raise AssertionError(f"ended before {text!r}:\n{self.screen[-2000:]}") from None
        return self.screen

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.seen)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=GUARD_S)
        finally:
            os.close(self.fd)


def test_the_text_console_greets_and_answers_offline_and_writes_the_call(tmp_path):
    db = tmp_path / "memory.db"
    replies = ["Welcome to Bella Vista! May I have your name?", "Nice to meet you, Maria."]
    with OpenAIStub(replies) as stub:  # type: ignore[arg-type]
        env = {**CLEAN_ENV, "OPENAI_BASE_URL": stub.base_url, "MEMORY_AGENT_DB": str(db), "TERM": "xterm"}
        console = Terminal([sys.executable, "-m", "memory_agent", "console", "--text"], cwd=tmp_path, env=env)
        try:
            console.wait_for("Welcome to Bella Vista! May I have your name?")
            console.wait_for("Type to talk to your agent")
            console.type("Hi, this is Maria\r")
            console.wait_for("Nice to meet you, Maria.")
            console.process.send_signal(signal.SIGINT)  # Ctrl+C
        finally:
            code = console.close()

    assert code == 0, console.screen[-2000:]
    assert "Deepgram" not in console.screen and "Traceback" not in console.screen
    assert rows(db, "SELECT role, content FROM messages WHERE role IN ('user', 'assistant') ORDER BY seq") == [
        ("assistant", replies[0]),
        ("user", "Hi, this is Maria"),
        ("assistant", replies[1]),
    ]
    assert rows(db, "SELECT ended_at IS NOT NULL, end_reason FROM calls") == [(1, "user_initiated")]
    # Only the LLM was asked for anything: no speech was synthesized or recognized.
    assert len(stub.requests) == 2 and all("messages" in r for r in stub.requests)
