"""The report of a streamed run (DESIGN §5b): the tokens table, TTFT and ITL by percentile,
output tokens per second, TTFT base vs candidate on the comparison page, and TTFT against
offered load in a sweep. One small streamed run against the fake streaming server is shared by
the module; a plain run's pages having none of this is checked in test_report.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infbench.cli import app
from infbench.compare.comparison import compare
from infbench.report.html import write_compare_html, write_run_html
from infbench.results.rundata import load_run_data
from infbench.results.rundir import load_run
from report_page import Page, png_size
from streamserver import StreamServer

runner = CliRunner(env={"COLUMNS": "100"})
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TOKEN_PLOTS = ["ttft-percentiles", "itl-percentiles", "output-tokens-over-time"]
KNOBS = {"ttft_s": 0.03, "itl_s": 0.01, "chunks": 5, "tokens_per_chunk": 2}
SCENARIO = """version: 1
name: streamed
target: {{kind: url, url: "{url}"}}
request: {{api: openai-chat, model: m, prompt: "hello", max_tokens: 10, timeout: 5s}}
client: {{sender: fast, connections: 8}}
workload:
  seed: 3
  warmup: 0.5s
  phases:
    - {{name: steady, duration: 1s, arrival: {{process: constant, rate: 8}}}}
    - {{name: bursty, duration: 1s, arrival: {{process: poisson, rate: 8}}}}
slo: {{ttft: 1s, tpot: 100ms}}
"""


def streamed_scenario(root: Path, url: str) -> Path:
    path = root / "streamed.yaml"
    path.write_text(SCENARIO.format(url=url))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streamed")
    with StreamServer(**KNOBS) as server:
        path = streamed_scenario(root, server.url)
        result = runner.invoke(app, ["run", str(path), "--out", str(root / "results"), "-q"])
    assert result.exit_code in (0, 4), result.output  # 4: a busy machine made the run late
    (found,) = (root / "results").iterdir()
    return found


def page_of(run_dir: Path) -> tuple[str, Page]:
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    return text, Page(text)


def phases_of(run_dir: Path) -> list[dict[str, Any]]:
    phases: list[dict[str, Any]] = json.loads((run_dir / "run.json").read_text())["phases"]
    return phases


def test_streamed_report_draws_ttft_itl_and_tokens_per_second(run_dir: Path) -> None:
    _, page = page_of(run_dir)
    order = list(page.figures)
    assert order.index("histogram") < order.index(TOKEN_PLOTS[0])
    assert [key for key in order if key in TOKEN_PLOTS] == TOKEN_PLOTS
    titles = {key: page.figures[key]["img"]["title"] for key in TOKEN_PLOTS}
    assert titles == {
        "ttft-percentiles": "TTFT distribution per phase",
        "itl-percentiles": "ITL and TPOT distribution per phase",
        "output-tokens-over-time": "Output tokens over time",
    }
    for key in TOKEN_PLOTS:
        img = page.figures[key]["img"]
        assert page.figures[key]["caption"].startswith(img["title"])
        width, height = png_size(img["src"])
        assert width >= 800 and height >= 250, key
    assert "time to first token" in page.figures["ttft-percentiles"]["img"]["alt"]
    assert "output tokens per second" in page.figures["output-tokens-over-time"]["img"]["alt"]


def test_tokens_table_holds_the_figures_of_run_json(run_dir: Path) -> None:
    _, page = page_of(run_dir)
    table = page.tables["tokens"]
    assert table["headers"][:4] == ["phase", "TTFT p50", "TTFT p90", "TTFT p99"]
    rows = {
        row[0]: dict(zip(table["titles"], row, strict=True)) for row in page.body_rows("tokens")
    }
    assert list(rows) == ["steady", "bursty"]  # warm-up excluded
    for phase in phases_of(run_dir):
        row = rows[phase["name"]]
        assert float(row["ttft_ms.p50"]) == pytest.approx(phase["ttft_ms"]["p50"])
        assert float(row["itl_ms.p99"]) == pytest.approx(phase["itl_ms"]["p99"])
        assert float(row["tpot_ms.p50"]) == pytest.approx(phase["tpot_ms"]["p50"])
        assert int(row["output_tokens"]) == phase["output_tokens"] == 10 * phase["ok"]
        assert float(row["peak_output_tps"]) == phase["peak_output_tps"]
        assert row["tokens_source"] == "usage"


def test_output_tokens_per_second_add_up_to_each_phase(run_dir: Path) -> None:
    """The bars are the rows' output tokens by second of completion: each phase's add up to its
    output_tokens, and its tallest bar is its peak_output_tps (the recorder's own sums)."""
    data = load_run_data(load_run(run_dir))
    tokens = data.output_tokens
    assert tokens is not None and set(tokens.by_phase) == {"warmup", "steady", "bursty"}
    for phase in phases_of(run_dir):
        counts = tokens.by_phase[phase["name"]]
        assert len(counts) == len(tokens.seconds)
        assert int(counts.sum()) == phase["output_tokens"]
        assert int(counts.max()) == phase["peak_output_tps"]


def test_missing_raw_rows_leave_only_the_tokens_plot_out(run_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / "requests.csv.gz").unlink()
    text, page = page_of(Path(write_run_html(copy)).parent)
    assert "output-tokens-over-time" not in page.figures
    assert "Output tokens over time: not drawn, requests.csv.gz is not in" in text
    assert {"ttft-percentiles", "itl-percentiles"} <= set(page.figures)
    assert "tokens" in page.tables


def test_compare_html_overlays_ttft_of_streamed_phases(run_dir: Path, tmp_path: Path) -> None:
    cand = Path(shutil.copytree(run_dir, tmp_path / "cand"))
    out = tmp_path / "compare.html"
    result = runner.invoke(app, ["compare", str(run_dir), str(cand), "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = Page(out.read_text())
    assert list(page.figures) == [
        "compare-percentiles",
        "compare-ttft-percentiles",
        "compare-latency-over-time",
    ]
    img = page.figures["compare-ttft-percentiles"]["img"]
    assert img["title"] == "TTFT distributions, base vs candidate"
    assert "time to first token" in img["alt"]


def test_compare_html_says_when_only_one_run_streamed(run_dir: Path, tmp_path: Path) -> None:
    plain = GOLDEN / "base"  # phases steady and bursty too, not streamed
    comparison = compare(plain, run_dir)
    out = write_compare_html(comparison, load_run(plain), load_run(run_dir), tmp_path / "c.html")
    text = out.read_text()
    assert "compare-ttft-percentiles" not in Page(text).figures
    assert "TTFT distributions: nothing both runs measured" in text


def test_sweep_of_streamed_levels_plots_ttft_against_load(tmp_path: Path) -> None:
    with StreamServer(**KNOBS) as server:
        path = streamed_scenario(tmp_path, server.url)
        args = ["sweep", str(path), "--out", str(tmp_path / "out"), "--rates", "8"]
        result = runner.invoke(app, [*args, "--duration", "1s"])
    assert result.exit_code == 0, result.output
    (directory,) = (tmp_path / "out").iterdir()
    doc = json.loads((directory / "sweep.json").read_text())
    for level in doc["levels"]:
        run = json.loads((Path(level["result_dir"]) / "run.json").read_text())
        ttft = run["phases"][0]["ttft_ms"]
        assert (level["ttft_p50_ms"], level["ttft_p99_ms"]) == (ttft["p50"], ttft["p99"])
    png = (directory / "latency-vs-load.png").read_bytes()
    width = int.from_bytes(png[16:20], "big")
    assert width == int(16.5 * 110)  # three panels: latency, TTFT, throughput
