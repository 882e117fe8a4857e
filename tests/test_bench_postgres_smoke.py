"""The PostgreSQL benchmark runs end to end at a tiny scale and reports every section (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "Recall: identity to memory text",
    "End-of-call write",
    "Processes finishing calls at once",
    "Export",
    "Goals",
)


def test_postgres_benchmark_smoke_run_writes_a_report_with_every_section(tmp_path, pg_server):
    out = tmp_path / "bench_postgres.md"

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_postgres.py"),
            "--smoke",
            "--url",
            pg_server.admin_url,
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    for title in SECTIONS:
        assert f"#### {title}" in report
    assert "300 customers (smoke)" in report
    for processes in (1, 8):
        assert f"\n| {processes} | " in report
    assert "| 8 processes finishing calls at once: 0 errors | 0 errors | met |" in report
    assert "the rows are checked to be the same" in report
    password = pg_server.admin_url.partition("://")[2].partition("@")[0].partition(":")[2]
    assert not password or password not in result.stdout + result.stderr + report
