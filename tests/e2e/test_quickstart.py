"""The README's demo, shortened: a real `bentoml serve`, server-side metrics, resources, startup."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from infbench.cli import app

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"


def test_quickstart_shortened(tmp_path: Path) -> None:
    shorten = [
        "--set", "workload.warmup=1s",
        "--set", "workload.phases[0].duration=3s",
        "--set", "workload.phases[1].duration=3s",
        "--set", "workload.phases[2].duration=3s",
    ]  # fmt: skip
    # The server table fits the terminal, cutting headers to do so: render at 100 columns.
    runner = CliRunner(env={"COLUMNS": "100"})
    result = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(tmp_path), *shorten])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert [p["name"] for p in run["phases"]] == ["steady", "bursty", "ramp"]
    assert run["target"]["kind"] == "bentoml" and run["target"]["startup_s"] > 0
    server = run["server"]["phases"]
    for phase in run["phases"]:
        assert phase["ok"] == phase["scheduled"] > 0
        srv = server[phase["name"]]
        # the server saw what we sent (boundaries are sampled, so allow a request or two)
        seen = srv["requests_by_status"].get("200", 0)
        # Boundary scrapes are taken while requests are in flight: a few may land either side.
        slack = max(6, phase["completed"] // 20)
        assert abs(seen - phase["completed"]) <= slack, (phase["name"], seen, phase["completed"])
        assert srv["duration_p50_ms"] is not None and srv["rss_mb_max"] > 10
    assert (run_dir / "server.log").stat().st_size > 0
    assert any((run_dir / "server_metrics").iterdir())
    timeseries = (run_dir / "timeseries.csv").read_text().splitlines()
    header = timeseries[0].split(",")
    cpu = [row.split(",")[header.index("server_rss_mb")] for row in timeseries[1:]]
    assert any(value for value in cpu)
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "bentoml" in " ".join(p.info["cmdline"] or [])
        and str(run["target"]["base_url"].rsplit(":", 1)[1]) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers
    assert "srv p50" in result.output


LLM_QUICKSTART = QUICKSTART.parent / "llm" / "quickstart.yaml"


def test_llm_quickstart_shortened_reports_tokens(tmp_path: Path) -> None:
    """The LLM demo against the bundled stream service: TTFT and TPOT near its knobs."""
    shorten = [
        "--set", "workload.warmup=1s",
        "--set", "workload.phases[0].duration=4s",
        "--set", "workload.phases[1].duration=4s",
    ]  # fmt: skip
    runner = CliRunner(env={"COLUMNS": "100"})
    result = runner.invoke(app, ["run", str(LLM_QUICKSTART), "--out", str(tmp_path), *shorten])
    assert result.exit_code in (0, 4), result.output  # 4: a busy machine made the run invalid
    (run_dir,) = tmp_path.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    for phase in run["phases"]:
        assert phase["ok"] == phase["completed"] > 0, phase["errors"]
        assert phase["tokens_source"] == "usage"
        assert phase["output_tokens"] == 64 * phase["ok"]  # max_tokens 64, counted by the server
        assert 80.0 <= phase["ttft_ms"]["p50"] <= 300.0  # the service waits 80 ms (± 5)
        assert 12.0 <= phase["tpot_ms"]["p50"] <= 40.0  # a token every 15 ms (± 5)
    assert "TTFT p50" in result.output and "tok/s" in result.output
