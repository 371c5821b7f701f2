"""`infbench sweep` end to end against the in-process fake server (target kind `url`), with
one-second levels: a rate sweep, a small capacity search, and a grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app
from infbench.figure_format import format_figure

runner = CliRunner()


def scenario(tmp_path: Path, url: str, connections: int = 8) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        f"""version: 1
name: sweepy
target: {{kind: url, url: "{url}"}}
request: {{method: POST, path: /classify, body: {{text: hello}}, timeout: 5s}}
client: {{connections: {connections}}}
workload:
  seed: 5
  warmup: 0.3s
  phases:
    - {{name: steady, duration: 1s, arrival: {{process: poisson, rate: 10}}}}
    - {{name: ramp, duration: 1s, arrival: {{process: ramp, from: 1, to: 5}}}}
"""
    )
    return path


def sweep(tmp_path: Path, path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out"), *args])
    (directory,) = (tmp_path / "out").iterdir()
    doc = json.loads((directory / "sweep.json").read_text())
    return result.exit_code, doc, result.output


def test_rate_sweep_one_directory_per_level(tmp_path: Path, fake_server: FakeServer) -> None:
    fake_server.set(delay_s=0.002)
    code, doc, output = sweep(tmp_path, scenario(tmp_path, fake_server.url), "--rates", "20..40x2")
    assert code == 0, output
    assert doc["mode"] == "rates" and doc["phase"] == "steady" and doc["runs"] == 2
    assert [level["rate"] for level in doc["levels"]] == [20.0, 40.0]
    directory = Path(doc["sweep_dir"])
    for level in doc["levels"]:
        run = json.loads((Path(level["result_dir"]) / "run.json").read_text())
        # the level ran the chosen phase alone, at its rate
        assert [p["name"] for p in run["phases"]] == ["steady"]
        assert run["scenario"]["workload"]["phases"][0]["arrival"]["rate"] == level["rate"]
        assert Path(level["result_dir"]).parent == directory / level["label"]
        assert level["achieved_rps"] > 0 and level["p99_ms"] > 1.5 and level["error_rate"] == 0
        assert "ttft_p50_ms" not in level  # only levels that streamed have TTFT figures
    assert (directory / "latency-vs-load.png").stat().st_size > 10_000
    assert doc["plot"] == "latency-vs-load.png"
    assert "| 40 |" in (directory / "summary.md").read_text()
    assert "achieved/s" in output


def test_rate_sweep_refuses_a_ramp_phase(tmp_path: Path, fake_server: FakeServer) -> None:
    path = scenario(tmp_path, fake_server.url)
    result = runner.invoke(app, ["sweep", str(path), "--rates", "5", "--phase", "ramp"])
    assert result.exit_code == 2
    assert "no single arrival rate" in result.output
    assert fake_server.count() == 0  # refused before any run


def test_find_max_brackets_a_capacity(tmp_path: Path, fake_server: FakeServer) -> None:
    # One connection and 10 ms per answer: about 100 requests/s at most, with queueing in the
    # generator (counted in latency from the intended send time) well before that.
    fake_server.set(delay_s=0.010)
    path = scenario(tmp_path, fake_server.url, connections=1)
    code, doc, output = sweep(
        tmp_path, path, "--find-max", "--slo", "p90<=40ms,error_rate<=5%", "--start", "25",
        "--level-runs", "2", "--max-runs", "5", "--precision", "0.5",
    )  # fmt: skip
    assert code == 0, output
    result = doc["result"]
    assert doc["runs"] <= 5
    assert result["max_rate"] is not None and result["first_failing_rate"] is not None
    assert result["max_rate"] < result["first_failing_rate"] <= 200
    assert result["interval"] == [result["max_rate"], result["first_failing_rate"]]
    rates = [level["rate"] for level in doc["levels"]]
    assert rates[0] == 25 and result["max_rate"] in rates
    for level in doc["levels"]:
        assert 1 <= len(level["runs"]) <= 2
        metrics = [e["metric"] for e in level["verdict"]["estimates"]]
        assert metrics == ["p90", "error_rate"]
    assert "capacity lies in" in output
    # the answer is kept with the table, not only printed
    summary = (Path(doc["sweep_dir"]) / "summary.md").read_text()
    assert f"the capacity lies in [{format_figure(result['max_rate'], digits=4)}" in summary


def test_grid_compares_each_point_with_the_first(tmp_path: Path, fake_server: FakeServer) -> None:
    fake_server.set(delay_s=0.002)
    path = scenario(tmp_path, fake_server.url)
    code, doc, output = sweep(tmp_path, path, "--grid", "client.connections=1,4")
    assert code == 0, output
    points = doc["points"]
    assert [p["settings"] for p in points] == [
        {"client.connections": "1"},
        {"client.connections": "4"},
    ]
    assert "comparison" not in points[0]
    compared = {(r["phase"], r["metric"]) for r in points[1]["comparison"]}
    assert ("steady", "p99") in compared and ("ramp", "achieved_rps") in compared
    assert all(r["verdict"] in ("better", "worse", "~") for r in points[1]["comparison"])
    run = json.loads((Path(points[1]["result_dir"]) / "run.json").read_text())
    assert run["scenario"]["client"]["connections"] == 4
    assert "each point against point 1" in output
