"""The benchmark suite runs end to end at a tiny scale and reports every section (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "1. Recall: identity to memory text",
    "2. Recall by history length",
    "3. Finalize: one finished call",
    "4. Concurrent finalize",
    "5. Greeting: time to the first LLM request",
    "6. Memory text size",
    "7. Write transactions per call",
    "8. Database time per call",
    "9. WAL and database file size",
    "Goals",
)


def test_benchmark_smoke_run_writes_a_report_with_every_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nHow to run.\n\n## Export\n\nExport figures.\n")

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--smoke",
            "--customers",
            "300",
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
    for processes in (1, 2, 4, 8):
        assert f"\n| {processes} | " in report
    for orders in ("1", "10", "100", "1,000"):
        assert f"\n| {orders} | " in report
    assert "300 customers (smoke)" in report
    # the suite's block goes before the Export section and leaves it alone
    assert report.index("#### Goals") < report.index("## Export")
    assert report.endswith("## Export\n\nExport figures.\n")


def test_token_benchmark_measures_both_scripted_calls_as_the_openai_plugin_sends_them(tmp_path):
    figures_path, report_path = tmp_path / "tokens.json", tmp_path / "tokens.md"

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_tokens.py"),
            "--json",
            str(figures_path),
            "--markdown",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(figures_path.read_text())
    assert set(figures["calls"]) == {"new caller", "returning caller"}
    for call in figures["calls"].values():
        assert call["off_script"] == []  # every scripted step answered one request, none was left
        rows = call["per_request"]
        assert call["requests"] == len(rows) > 1
        assert call["chars"] == sum(row["chars"] for row in rows)
        assert call["body_chars"] > call["chars"]  # the body adds the model and streaming options
        assert rows[0]["agent"] == "Greeter"
        for row in rows:
            assert row["tools_chars"] > 0 and row["instructions_chars"] > 0
            # the tool schemas come first and are the same for every caller
            assert row["tools_chars"] <= row["prefix_chars"] <= row["chars"]
        share = call["prefix_share"]
        assert 0 < share["min"] <= share["mean"] <= 1
        # priced from the measured bodies: caching serves at most the static prefixes, and costs less
        assert 0 < call["cached_tokens"] < call["prompt_tokens"] == round(call["body_chars"] / 4)
        assert len(call["input_cost_usd"]) == 2
        for cost in call["input_cost_usd"].values():
            assert 0 < cost["cached"] < cost["uncached"]
    report = report_path.read_text()
    assert "| new caller | " in report and "| returning caller | " in report
