"""The worker as an operator meets it: `memory-agent start`, `dev` and `console` from a shell."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from livekit.agents import AgentServer

from memory_agent.identity import is_attested
from memory_agent.settings import Settings
from memory_agent.worker import build_server

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LIVEKIT_", "DEEPGRAM_", "MEMORY_"))}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_agent", *args],
        cwd=cwd,
        env={**CLEAN_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def unreachable(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("LIVEKIT_URL", f"ws://127.0.0.1:{closed_port()}")
    return run(
        *args,
        cwd=tmp_path,
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="a-secret-of-at-least-thirty-two-bytes",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # no OPENAI_API_KEY: a local server is enough
        DEEPGRAM_API_KEY="dg-test",
        MEMORY_AGENT_LIVEKIT_RETRIES="1",
        **env,
    )


def test_an_unreachable_livekit_server_is_one_line_and_a_failing_exit(tmp_path):
    result = unreachable(tmp_path, "start")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("memory-agent:")]
    assert len(errors) == 1
    assert "failed to connect to livekit" in errors[0] and "LIVEKIT_URL" in errors[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Takes connections (the kernel completes them) and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"ws://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """Answers every request with 401, as LiveKit does for a wrong key or secret; counts the requests."""

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.server.requests += 1  # type: ignore[attr-defined]
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    server.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
    assert server.requests == 1  # type: ignore[attr-defined]  # not retried


def test_a_server_that_never_answers_is_named_as_a_connect_timeout(tmp_path, silent_server):
    result = unreachable(tmp_path, "start", LIVEKIT_URL=silent_server, MEMORY_AGENT_LIVEKIT_CONNECT_TIMEOUT_S="2")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("memory-agent:")]
    assert len(errors) == 1
    assert "did not answer" in errors[0] and "within 2 s (connect timeout)" in errors[0]
    assert "LIVEKIT_URL" in errors[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_a_refused_key_or_secret_is_one_line_naming_them_and_not_retried(tmp_path, refusing_server):
    result = unreachable(tmp_path, "start", LIVEKIT_URL=refusing_server)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("memory-agent:")]
    assert len(errors) == 1
    assert "HTTP 401" in errors[0]
    assert "LIVEKIT_API_KEY" in errors[0] and "LIVEKIT_API_SECRET" in errors[0]
    assert "a-secret-of-at-least" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_the_health_endpoint_listens_where_the_settings_say(tmp_path):
    port = closed_port()
    result = unreachable(tmp_path, "start", MEMORY_AGENT_HTTP_HOST="127.0.0.1", MEMORY_AGENT_HTTP_PORT=str(port))

    output = (result.stdout + result.stderr).splitlines()
    messages = [json.loads(line)["message"] for line in output if line.startswith("{")]
    assert f"HTTP server listening on 127.0.0.1:{port}" in messages


def test_each_worker_log_line_is_printed_once(tmp_path):
    result = unreachable(tmp_path, "start")

    output = (result.stdout + result.stderr).splitlines()
    messages = [json.loads(line)["message"] for line in output if line.startswith("{")]
    assert messages.count("starting worker") == 1
    # A second handler would print the same records again in plain text.
    assert not [line for line in output if "starting worker" in line and not line.startswith("{")]


def test_dev_help_promises_nothing_livekit_removed(tmp_path):
    result = run("dev", "--help", cwd=tmp_path)

    assert result.returncode == 0
    assert "reloading on change" not in result.stdout
    assert "no auto-reload" in result.stdout


def test_the_agent_name_is_registered_for_explicit_dispatch(monkeypatch):
    monkeypatch.delenv("LIVEKIT_AGENT_NAME", raising=False)
    registered: dict[str, str] = {}

    def rtc_session(self: AgentServer, func: object, *, agent_name: str = "", **_: object) -> object:
        registered["agent_name"] = agent_name
        return func

    monkeypatch.setattr(AgentServer, "rtc_session", rtc_session)

    build_server(Settings(LIVEKIT_AGENT_NAME="bella-vista-phone"))

    assert registered == {"agent_name": "bella-vista-phone"}


def test_only_a_full_attestation_vouches_for_a_number():
    attribute = "sip.h.x-attestation"
    assert is_attested({attribute: "A"}, attribute)
    assert not is_attested({attribute: "B"}, attribute)
    assert not is_attested({attribute: "A"}, None)
    assert not is_attested(None, attribute)
