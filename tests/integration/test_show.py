"""`infbench run` at 60 and 80 columns shows every figure whole, and `infbench show` prints a
finished run's tables again: table, md and json, a `--repeat` aggregate with its repetitions,
a sweep directory, and exit 2 naming the fix for anything else. Real runs against the
in-process fake server, through Typer's CliRunner with COLUMNS set as a terminal would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app
from infbench.figure_format import format_figure

SCENARIO = """version: 1
name: shown
target: {{kind: url, url: "{url}"}}
request: {{method: POST, path: /classify, body: {{text: hello}}, timeout: 5s}}
workload:
  seed: 7
  warmup: 0.3s
  phases:
    - {{name: steady, duration: 1s, arrival: {{process: poisson, rate: 40}}}}
    - {{name: a-long-phase-name, duration: 1s, arrival: {{process: constant, rate: 20}}}}
slo: {{p99: 2s}}
"""


def cli(*args: str, columns: int = 80) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, list(args))
    return result.exit_code, result.output


def figures(run: dict[str, Any]) -> list[str]:
    """The run summary's latency and rate figures as the one formatter writes them."""
    shown = []
    for phase in run["phases"]:
        shown += [format_figure(phase["latency_ms"][q], "ms") for q in ("p50", "p99", "max")]
        shown += [format_figure(phase["service_ms"]["p99"], "ms")]
        shown += [format_figure(phase["achieved_rps"]), format_figure(phase["ok"], "count")]
    return shown


def assert_whole(output: str, run: dict[str, Any]) -> None:
    assert "…" not in output, output
    missing = [figure for figure in figures(run) if figure not in output]
    assert not missing, f"{missing} not shown whole:\n{output}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """One run at 60 columns, one at 80, a `--repeat 2` aggregate: directory and output."""
    root = tmp_path_factory.mktemp("shown")
    made = {}
    with FakeServer(delay_s=0.004) as server:
        scenario = root / "scenario.yaml"
        scenario.write_text(SCENARIO.format(url=server.url))
        for name, columns, extra in (("60", 60, []), ("80", 80, []), ("repeat", 80, ["2"])):
            out = root / name
            args = [
                "run",
                str(scenario),
                "--out",
                str(out),
                *(["--repeat", *extra] if extra else []),
            ]
            code, output = cli(*args, columns=columns)
            assert code in (0, 4), output  # 4: a busy machine made the run late
            (directory,) = out.iterdir()
            made[name] = (directory, output)
    return made


def run_json(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "run.json").read_text())
    return data


@pytest.mark.parametrize("columns", ["60", "80"])
def test_run_shows_every_figure_whole(runs: dict[str, tuple[Path, str]], columns: str) -> None:
    directory, output = runs[columns]
    assert_whole(output, run_json(directory))
    assert "a-long-phase-name" in output and "lag p99" in output


@pytest.mark.parametrize("columns", [40, 60, 80, 100])
def test_show_prints_the_tables_again(runs: dict[str, tuple[Path, str]], columns: int) -> None:
    directory, _ = runs["80"]
    code, output = cli("show", str(directory), columns=columns)
    assert code == 0, output
    assert_whole(output, run_json(directory))
    assert "slo p99 ≤ 2s: ok in every phase" in output and str(directory) in output


def test_show_markdown_and_json(runs: dict[str, tuple[Path, str]]) -> None:
    directory, _ = runs["80"]
    run = run_json(directory)
    code, md = cli("show", str(directory), "--format", "md")
    assert code == 0, md
    assert "| phase | p50 | p90 |" in md and "|---|--:|" in md
    assert all(figure in md for figure in figures(run))
    code, text = cli("show", str(directory), "-f", "json")
    assert code == 0, text
    shown = json.loads(text)
    assert shown["phases"] == run["phases"] and shown["scenario"] == run["scenario"]


def test_show_a_repeat_aggregate_lists_its_repetitions(runs: dict[str, tuple[Path, str]]) -> None:
    directory, _ = runs["repeat"]
    code, output = cli("show", str(directory), columns=60)
    assert code == 0, output
    assert_whole(output, run_json(directory))
    assert "repetitions" in output and "run-1" in output and "run-2" in output
    for name in ("run-1", "run-2"):
        child = run_json(directory / name)
        p99 = format_figure(child["phases"][0]["latency_ms"]["p99"], "ms")
        assert p99 in output, output
    code, md = cli("show", str(directory), "--format", "md")
    assert code == 0 and "| run | phase |" in md and "| run-2 |" in md


def test_show_a_sweep_directory(tmp_path: Path, fake_server: FakeServer) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.format(url=fake_server.url))
    code, output = cli(
        "sweep", str(scenario), "--rates", "5,10", "--duration", "1s", "--out", str(tmp_path)
    )
    assert code == 0, output
    (directory,) = (p for p in tmp_path.iterdir() if p.is_dir())
    doc = json.loads((directory / "sweep.json").read_text())
    code, shown = cli("show", str(directory), columns=60)
    assert code == 0, shown
    assert "…" not in shown and "achieved/s" in shown
    for level in doc["levels"]:
        assert format_figure(level["p99_ms"], "ms") in shown
    code, md = cli("show", str(directory), "-f", "md")
    assert code == 0 and md == (directory / "summary.md").read_text()
    code, text = cli("show", str(directory), "-f", "json")
    assert code == 0 and json.loads(text)["levels"] == doc["levels"]


def test_show_names_the_fix_for_what_is_not_a_result(
    runs: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    directory, _ = runs["80"]
    cases = {
        tmp_path / "missing": "no such directory",
        directory / "run.json": f"give its folder: infbench show {directory}",
        directory.parent: f"name one: infbench show {directory}",
        tmp_path: "no run.json or sweep.json",
    }
    for path, named in cases.items():
        code, output = cli("show", str(path), columns=200)
        assert code == 2 and named in output, output
    code, output = cli("show", str(directory), "--format", "xml")
    assert code == 2 and "choose one of table, md, json" in output
    (directory.parent / "broken").mkdir()
    (directory.parent / "broken" / "run.json").write_text("{")
    code, output = cli("show", str(directory.parent / "broken"), columns=200)
    assert code == 2 and "corrupt or truncated JSON" in output


@pytest.mark.parametrize("columns", [40, 60, 80])
def test_the_validate_preview_keeps_every_cell_whole(tmp_path: Path, columns: int) -> None:
    scenario = tmp_path / "scenario.yaml"
    closed = "    - {name: workers, duration: 90s, arrival: {process: closed, concurrency: 12}}\n"
    scenario.write_text(SCENARIO.format(url="http://127.0.0.1:9").replace("slo:", closed + "slo:"))
    code, output = cli("validate", str(scenario), columns=columns)
    assert code == 0, output
    assert "…" not in output
    assert (
        max(len(line.rstrip()) for line in output.splitlines() if "sha256" not in line) <= columns
    )
    for cell in ("warmup (warm-up)", "a-long-phase-name", "closed loop, 12 workers", "90s", "46.0"):
        assert cell in output, output
