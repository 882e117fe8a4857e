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


def test_data_layer_benchmark_smoke_run_reports_both_backends_against_their_raw_drivers(tmp_path, pg_server):
    out = tmp_path / "bench_layer.md"

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_layer.py"),
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
    for title in ("Recall: identity to memory text", "End-of-call write"):
        for backend in ("SQLite", "PostgreSQL"):
            assert f"{title}, {backend}" in report
    assert "| SQLite | memory-agent export |" in report and "| SQLite | sqlite3 -csv |" in report
    assert "| PostgreSQL | memory-agent export |" in report and "| PostgreSQL | psql \\copy |" in report
    assert "the rows are checked to be the same" in report
    assert "Lines of Python: `db/`" in report
    assert "Importing `memory_agent.export`" in report
    for goal in ("recall p50 at most 2x raw", "end-of-call write p50 at most 1.5x raw", "export under 64 MB"):
        assert f"| SQLite: {goal} |" in report and f"| PostgreSQL: {goal} |" in report
