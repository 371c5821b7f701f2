"""Cost per 1M requests and output tokens (``cost:``, analysis/cost.py), end to end: the console,
run.json, summary.csv, compare and its gate, and ``sweep --find-max`` at the SLO capacity.

The formula is asserted against each run's own achieved throughput (per_hour × instances /
3600 / rate × 1e6), so no timing of the shared machine enters an assertion.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infbench.cli import app
from streamserver import StreamServer

runner = CliRunner(env={"COLUMNS": "120"})


def scenario(tmp_path: Path, url: str, per_hour: float, name: str = "priced") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""
version: 1
name: {name}
target: {{kind: url, url: "{url}", gpu: {{nvml: off}}}}
request: {{api: openai-chat, model: m, prompt: "hello", max_tokens: 10, timeout: 5s}}
workload:
  seed: 1
  phases:
    - {{name: steady, duration: 2s, arrival: {{process: constant, rate: 4}}}}
slo: {{ttft: 2s}}
cost: {{per_hour: {per_hour}, currency: EUR, instances: 2}}
"""
    )
    return path


def run(tmp_path: Path, path: Path, out: str) -> tuple[dict[str, Any], str, Path]:
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / out)])
    assert result.exit_code in (0, 4), result.output
    (run_dir,) = [p for p in (tmp_path / out).iterdir() if p.is_dir()]
    return json.loads((run_dir / "run.json").read_text()), result.output, run_dir


def test_cost_in_console_run_json_summary_and_compare_gate(tmp_path: Path) -> None:
    with StreamServer(ttft_s=0.01, itl_s=0.005, chunks=5) as stream:
        base, output, base_dir = run(tmp_path, scenario(tmp_path, stream.url, 2.5), "a")
        _, _, cand_dir = run(tmp_path, scenario(tmp_path, stream.url, 5.0), "b")
    (phase,) = base["phases"]
    cost = phase["cost"]
    per_second = 2.5 * 2 / 3600
    assert cost["currency"] == "EUR" and cost["instances"] == 2
    assert cost["per_1m_requests"] == round(per_second / phase["achieved_rps"] * 1e6, 6)
    assert cost["per_1m_output_tokens"] == round(per_second / phase["output_tps"] * 1e6, 6)
    assert "per 1M tok" in output and "EUR" in output
    with open(base_dir / "summary.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert float(row["cost_per_1m_output_tokens"]) == round(cost["per_1m_output_tokens"], 3)
    assert row["currency"] == "EUR"
    assert "LLM server, GPU and cost" in (base_dir / "report.html").read_text()
    # twice the price per hour: the gate on cost per 1M output tokens fails, naming it
    gate = ["compare", str(base_dir), str(cand_dir), "--fail-on", "cost_per_1m_output_tokens=+5%"]
    result = runner.invoke(app, gate)
    assert result.exit_code == 1, result.output
    assert "cost_per_1m_output_tokens" in result.output and "FAILED" in result.output
    same = runner.invoke(app, [*gate[:2], str(base_dir), *gate[3:]])
    assert same.exit_code == 0, same.output


def test_find_max_reports_the_cost_at_the_slo_capacity(tmp_path: Path) -> None:
    with StreamServer(ttft_s=0.01, itl_s=0.005, chunks=3) as stream:
        path = scenario(tmp_path, stream.url, 3.6)
        result = runner.invoke(
            app,
            ["sweep", str(path), "--out", str(tmp_path), "--find-max", "--slo", "ttft<=2s",
             "--start", "4", "--level-runs", "1", "--max-runs", "2", "--duration", "2s"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    (sweep_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.endswith("priced")]
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    at = doc["result"]["cost_at_capacity"]
    level = next(lv for lv in doc["levels"] if lv["rate"] == doc["result"]["max_rate"])
    assert at["rate"] == level["rate"] and at["currency"] == "EUR"
    assert at["cost_per_1m_output_tokens"] == level["cost_per_1m_output_tokens"] is not None
    assert "cost at the SLO capacity" in result.output and "per 1M output tokens" in result.output
    assert doc["cost_plot"] == "cost.png" and (sweep_dir / "cost.png").stat().st_size > 0


def test_a_negative_price_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    path = scenario(tmp_path, "http://127.0.0.1:9", -1.0)
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "cost.per_hour" in result.output and "0 or more" in result.output
