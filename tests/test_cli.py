"""The installed `memory-agent` command as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import rows

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LIVEKIT_", "DEEPGRAM_"))}


def run(*args: str, cwd, env=None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_agent", *args],
        cwd=cwd,
        env=env or CLEAN_ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_runs_offline_and_remembers_the_caller(tmp_path):
    result = run("demo", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "scripted" in result.stdout
    assert "Maria, welcome back" in result.stdout
    assert '<caller-data>\n  {"name": "Maria"' in result.stdout
    db = tmp_path / "demo.db"
    assert rows(db, "SELECT name, order_count FROM customers") == [("Maria", 2)]
    assert rows(db, "SELECT status FROM orders") == [("placed",), ("placed",)]


def test_demo_writes_its_own_database_or_the_one_given_never_the_real_one(tmp_path):
    env = {**CLEAN_ENV, "MEMORY_AGENT_DB": str(tmp_path / "real.db")}
    assert run("demo", cwd=tmp_path, env=env).returncode == 0
    assert run("demo", "--db", str(tmp_path / "flag.db"), cwd=tmp_path, env=env).returncode == 0

    assert rows(tmp_path / "demo.db", "SELECT count(*) FROM customers") == [(1,)]
    assert rows(tmp_path / "flag.db", "SELECT count(*) FROM customers") == [(1,)]
    assert not (tmp_path / "real.db").exists() and not (tmp_path / "memory.db").exists()


def test_chat_without_credentials_exits_with_one_line(tmp_path):
    result = run("chat", "--identity", "alice", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "memory-agent: error: set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server) to chat"
    ]
    assert not (tmp_path / "memory.db").exists()


def test_worker_without_livekit_settings_exits_non_zero(tmp_path):
    result = run("start", cwd=tmp_path)

    assert result.returncode == 2
    assert "LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("shopping list\n")

    result = run("demo", "--db", str(bogus), cwd=tmp_path)

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a SQLite database" in result.stderr
    assert bogus.read_text() == "shopping list\n"


def test_worker_takes_its_livekit_settings_from_env_local(tmp_path, monkeypatch):
    from livekit.agents import cli as livekit_cli

    from memory_agent.cli import main

    (tmp_path / ".env.local").write_text(
        "LIVEKIT_URL=wss://bella.example\nLIVEKIT_API_KEY=key\nLIVEKIT_API_SECRET=secret\n"
        "OPENAI_API_KEY=sk-test\nDEEPGRAM_API_KEY=dg-test\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OPENAI_API_KEY", "DEEPGRAM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    seen = {}
    # LiveKit's CLI would connect to the server; stop at the hand-over and look at what it would read.
    monkeypatch.setattr(livekit_cli, "run_app", lambda server: seen.update(os.environ, argv=sys.argv[1:]))

    assert main(["dev", "--log-level", "debug"]) == 0

    assert (seen["LIVEKIT_URL"], seen["LIVEKIT_API_KEY"], seen["LIVEKIT_API_SECRET"]) == (
        "wss://bella.example",
        "key",
        "secret",
    )
    assert seen["argv"] == ["dev", "--log-level", "debug"]


def test_worker_refuses_placeholders_from_env_example(tmp_path):
    env = {
        **CLEAN_ENV,
        "LIVEKIT_URL": "wss://your-project.livekit.cloud",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "s",
    }
    result = run("start", cwd=tmp_path, env=env)

    assert result.returncode == 2
    assert "LIVEKIT_URL (still the placeholder from .env.example)" in result.stderr


def test_demo_ignores_settings_it_does_not_use(tmp_path):
    env = {**CLEAN_ENV, "LIVEKIT_URL": "wss://your-project.livekit.cloud", "MEMORY_AGENT_LOG_LEVEL": "debug"}
    assert run("demo", cwd=tmp_path, env=env).returncode == 0
