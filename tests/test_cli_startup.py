"""`memory-agent` answers help and usage mistakes at once: nothing heavy is imported for them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("livekit", "sqlalchemy", "sqlmodel", "db", "aiosqlite", "pydantic_settings", "numpy")

PROBE = """
import json, sys
from memory_agent.cli import main
code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.stdin.read())))
print("LOADED " + json.dumps(loaded), file=sys.stderr)
sys.exit(code)
"""


def run(*args: str) -> tuple[int, str, str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], input=json.dumps(HEAVY), capture_output=True, text=True, timeout=120
    )
    lines = result.stderr.splitlines()
    loaded = json.loads(lines[-1].removeprefix("LOADED "))
    return result.returncode, result.stdout, "\n".join(lines[:-1]), loaded


@pytest.mark.parametrize(
    "args",
    [("--help",), ("start", "--help"), ("console", "--help"), ("forget", "--help"), ("backup", "--help")],
)
def test_help_loads_nothing_heavy(args):
    code, out, _err, loaded = run(*args)

    assert code == 0
    assert "Usage: memory-agent" in out
    assert loaded == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("backup",), "Missing argument 'PATH'. (see memory-agent backup --help)"),
        (("nosuch",), "No such command 'nosuch'. (see memory-agent --help)"),
        (("purge", "--days", "x"), "Invalid value for '--days'"),
        (("inspect", "--port", "0"), "Invalid value for '--port'"),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_2_without_loading_anything_heavy(args, expected):
    code, out, err, loaded = run(*args)

    assert code == 2
    assert err.startswith("memory-agent: error: ") and "\n" not in err
    assert expected in err
    assert out == ""
    assert loaded == []


def test_no_command_prints_the_help():
    code, out, _err, loaded = run()

    assert code == 2
    assert "Commands" in out and loaded == []


@pytest.mark.parametrize("command", ["backup", "inspect"])
def test_commands_that_read_sqlite_only_do_not_offer_postgresql(command):
    _code, out, _err, _loaded = run(command, "--help")

    assert "SQLite database file" in out
    assert "postgresql://" not in out
