"""A skipped test fails the run in CI and only there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def run_pytest(folder: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (folder / "test_some.py").write_text(
        "import pytest\n\ndef test_runs():\n    pass\n\ndef test_skips():\n    pytest.skip('no server here')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(TESTS)}
    if ci:
        env["CI"] = "true"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "ci_skips", "-p", "no:randomly", "-p", "no:cacheprovider"]
    return subprocess.run([*command, str(folder)], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_the_run_in_ci(tmp_path: Path):
    done = run_pytest(tmp_path, ci=True)
    assert done.returncode == 1, done.stdout
    assert "1 test(s) skipped, which CI counts as failures" in done.stdout


def test_a_skip_is_only_a_skip_elsewhere(tmp_path: Path):
    done = run_pytest(tmp_path, ci=False)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped" in done.stdout
