"""In CI a skipped test is a failure: everything the tests need (PostgreSQL, Chromium, the voice models) is
installed there, so a missing one must not pass unseen. Outside CI a skip stays a skip."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and session.exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped, which CI counts as failures (see the reasons above)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
