"""`memory-agent demo` keeps its made-up callers in a database of their own."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import rows

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LIVEKIT_", "DEEPGRAM_", "MEMORY_"))}


def demo(*args: str, cwd, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_agent", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_writes_demo_db_and_says_so_never_the_real_database(tmp_path):
    env = {**CLEAN_ENV, "MEMORY_AGENT_DB": str(tmp_path / "real.db")}

    result = demo(cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert "Database: demo.db" in result.stdout
    assert rows(tmp_path / "demo.db", "SELECT count(*) FROM customers WHERE name = 'Maria'") == [(1,)]
    assert not (tmp_path / "real.db").exists() and not (tmp_path / "memory.db").exists()


def test_demo_writes_where_db_says(tmp_path):
    result = demo("--db", str(tmp_path / "mine.db"), cwd=tmp_path, env=CLEAN_ENV)

    assert result.returncode == 0, result.stderr
    assert f"Database: {tmp_path / 'mine.db'}" in result.stdout
    assert rows(tmp_path / "mine.db", "SELECT count(*) FROM customers WHERE name = 'Maria'") == [(1,)]
    assert not (tmp_path / "demo.db").exists()
