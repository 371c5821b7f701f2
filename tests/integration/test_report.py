"""report.html of a real run, ``infbench report`` and ``compare --html``: the page's structure.

One small run (report_run.py) is shared by the module; each test reads its report or a copy.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infbench.analysis.metrics import COMPARE_METRICS
from infbench.cli import app
from infbench.compare.comparison import (
    CompareSettings,
    Comparison,
    MetricComparison,
    compare,
)
from infbench.compare.warnings import CompareWarning
from infbench.errors import ResultFormatError
from infbench.report.html import write_compare_html, write_run_html, write_run_html_quietly
from infbench.results.rundir import SUMMARY_COLUMNS, load_run
from report_page import Page, png_size
from report_run import make_run_dir

runner = CliRunner()
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RUN_PLOTS = {
    "latency-over-time",
    "rate-over-time",
    "percentiles",
    "histogram",
    "errors-over-time",
    "lag",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, output = make_run_dir(tmp_path_factory.mktemp("report"))
    assert f"report: {path / 'report.html'}" in output.replace("\n", "")
    return path


@pytest.fixture
def copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run to damage."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def page_of(run_dir: Path) -> tuple[str, Page]:
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    return text, Page(text)


def test_run_writes_a_self_contained_report(run_dir: Path) -> None:
    text, page = page_of(run_dir)
    assert text.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "script" not in page.tags
    assert all(link.startswith("data:image/png;base64,") for link in page.links)
    assert "<h1>reported " in text


def test_every_plot_is_an_inline_png_with_alt_title_and_caption(run_dir: Path) -> None:
    _, page = page_of(run_dir)
    assert set(page.figures) >= RUN_PLOTS
    for key, found in page.figures.items():
        img = found["img"]
        assert img["alt"] and img["title"], key
        assert found["caption"].startswith(img["title"]), key
        width, height = png_size(img["src"])
        assert width >= 800 and height >= 250, key


def test_a_plain_run_has_no_token_views(run_dir: Path) -> None:
    """The tokens table and plots (token_plots.py) are for streamed runs only."""
    text, page = page_of(run_dir)
    words = re.sub(r"data:image/png;base64,[^\"]*", "", text)  # base64 may spell anything
    assert not {"ttft-percentiles", "itl-percentiles", "output-tokens-over-time"} & set(
        page.figures
    )
    assert "tokens" not in page.tables and "<h3>Tokens</h3>" not in words
    assert "TTFT" not in words and "ITL" not in words and "Output tokens" not in words


def test_phase_table_has_the_numbers_of_summary_csv(run_dir: Path) -> None:
    _, page = page_of(run_dir)
    with open(run_dir / "summary.csv", newline="") as handle:
        summary = list(csv.reader(handle))
    table = page.tables["phases"]
    assert table["titles"] == list(SUMMARY_COLUMNS) == summary[0][: len(SUMMARY_COLUMNS)]
    assert page.body_rows("phases") == [row[: len(SUMMARY_COLUMNS)] for row in summary[1:]]
    assert [row[0] for row in summary[1:]] == ["steady", "ramp"]


def test_header_shows_validity_slo_target_and_environment(run_dir: Path) -> None:
    text, page = page_of(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    assert 'id="validity"' in text
    assert ("Valid run" in text) == run["valid"]
    slo = page.body_rows("slo")
    assert {row[0] for row in slo} == {"steady", "ramp"}
    assert sum(row[3] == "FAILED" for row in slo) == 2  # error_rate 10 % > 1 % in both phases
    assert sum(row[3] == "ok" for row in slo) == 2
    assert run["target"]["base_url"] in text
    assert run["environment"]["python"] in text
    assert "http_5xx" in text  # the failed requests, in the warnings


def test_invalid_run_is_shown_in_red_with_its_reasons(copy: Path) -> None:
    run = json.loads((copy / "run.json").read_text())
    run["valid"], run["invalid_reasons"] = False, ["phase steady: send lag p99 9 ms exceeds 1 ms"]
    (copy / "run.json").write_text(json.dumps(run))
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    text, _ = page_of(copy)
    section = re.search(r'<section class="card bad" id="validity">(.*?)</section>', text)
    assert section is not None
    assert "INVALID run" in section.group(1)
    assert "send lag p99 9 ms exceeds 1 ms" in section.group(1)
    assert '<span class="badge bad">INVALID</span>' in text


def test_report_command_renders_again_and_opens(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (copy / "report.html").unlink()
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    result = runner.invoke(app, ["report", str(copy), "--open"])
    assert result.exit_code == 0, result.output
    assert (copy / "report.html").exists()
    assert opened == [(copy / "report.html").resolve().as_uri()]


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _damage_timeseries(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], "3,steady,12,x"]) + "\n")


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: (d / "run.json").write_text('{"format_version": 1, "pha'), "run.json"),
        (lambda d: _truncate(d / "latency.hlog", 0.6), "latency.hlog:"),
        (lambda d: _truncate(d / "requests.csv.gz", 0.5), "requests.csv.gz"),
        (lambda d: _damage_timeseries(d / "timeseries.csv"), "timeseries.csv:3"),
    ],
    ids=["run.json", "latency.hlog", "requests.csv.gz", "timeseries.csv"],
)
def test_damaged_result_dir_exits_2_naming_the_file(copy: Path, damage: Any, named: str) -> None:
    damage(copy)
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 2, result.output
    message = result.output.replace("\n", "")  # rich wraps long paths mid-word
    assert named in message and message.startswith("error:")


def test_phase_entry_without_a_figure_is_a_format_error(copy: Path) -> None:
    run = json.loads((copy / "run.json").read_text())
    del run["phases"][1]["latency_ms"]
    (copy / "run.json").write_text(json.dumps(run))
    with pytest.raises(ResultFormatError, match=r"phases\[1\] \(ramp\): `latency_ms` is missing"):
        write_run_html(copy)


def test_missing_raw_rows_leave_their_plot_out(copy: Path) -> None:
    (copy / "requests.csv.gz").unlink()
    write_run_html(copy)
    text, page = page_of(copy)
    assert "errors-over-time" not in page.figures
    assert "requests.csv.gz is not in the result directory" in text
    assert set(page.figures) >= RUN_PLOTS - {"errors-over-time"}


def _broken(data: object) -> None:
    raise RuntimeError("no fonts")


def test_plot_failure_warns(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infbench.report.plots.run_plots", _broken)
    out = StringIO()
    assert write_run_html_quietly(copy, Console(file=out, width=200)) is None
    assert "report.html was not written (RuntimeError: no fonts)" in out.getvalue()
    assert f"infbench report {copy}" in out.getvalue()


def test_plot_failure_during_a_run_keeps_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("infbench.report.plots.run_plots", _broken)
    run_dir, output = make_run_dir(tmp_path)  # asserts the usual exit code (1: SLO failed)
    assert load_run(run_dir).record.status == "complete"
    assert not (run_dir / "report.html").exists()
    assert "report.html was not written" in output.replace("\n", " ")


def test_errors_plot_counts_every_failed_request(run_dir: Path) -> None:
    from infbench.results.rundata import load_run_data

    data = load_run_data(load_run(run_dir))
    with gzip.open(run_dir / "requests.csv.gz", "rt") as handle:
        failed = sum(1 for row in csv.DictReader(handle) if row["error"])
    assert set(data.errors) == {"http_5xx 503"}
    assert int(sum(counts.sum() for counts in data.errors.values())) == failed > 0


def test_aggregate_of_repetitions_pools_their_histograms(tmp_path: Path) -> None:
    out = write_run_html(GOLDEN / "rep-base", tmp_path / "report.html")
    text = out.read_text()
    page = Page(text)
    assert "Aggregate of 4 repetitions" in text
    assert {"latency-over-time", "percentiles", "histogram"} <= set(page.figures)
    assert "timeseries.csv is not in the result directory" in text


def test_compare_html_overlays_both_runs_and_lists_the_verdicts(tmp_path: Path) -> None:
    base, cand = GOLDEN / "base", GOLDEN / "cand-slow"
    comparison = compare(base, cand)
    out = write_compare_html(comparison, load_run(base), load_run(cand), tmp_path / "c.html")
    page = Page(out.read_text())
    assert set(page.figures) == {"compare-percentiles", "compare-latency-over-time"}
    rows = page.body_rows("comparison")
    assert len(rows) == len(comparison.rows)
    assert page.tables["comparison"]["headers"][-1] == "verdict"
    verdicts = {(row[0], row[1]): row[-1] for row in rows}
    assert verdicts == {(r.phase, r.metric): r.verdict for r in comparison.rows}
    assert "worse" in verdicts.values()


def test_compare_html_formats_each_row_and_the_warnings(tmp_path: Path) -> None:
    row = MetricComparison(
        phase="steady", metric="p99", base=20.0, cand=30.0, change=0.5, ci=(0.4, 0.6),
        p_value=0.0001, n=(30, 30), method="bootstrap", verdict="worse", significant=True,
    )  # fmt: skip
    comparison = Comparison(
        base="base", candidate="cand", method="bootstrap", repetitions=(1, 1),
        settings=CompareSettings(), phases=("steady",), rows=(row,),
        warnings=(CompareWarning("few_seconds", "few seconds"),),
    )  # fmt: skip
    base = load_run(GOLDEN / "base")
    out = write_compare_html(comparison, base, load_run(GOLDEN / "cand"), tmp_path / "c.html")
    text = out.read_text()
    page = Page(text)
    spec = COMPARE_METRICS["p99"]
    assert page.body_rows("comparison") == [
        ["steady", "p99", spec.format(20.0), spec.format(30.0), "+50.0%", "[+40.0%, +60.0%]",
         "<0.001", "worse"]
    ]  # fmt: skip
    assert "few seconds" in text


def test_compare_command_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    result = runner.invoke(
        app, ["compare", str(GOLDEN / "base"), str(GOLDEN / "cand"), "--html", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "compare-percentiles" in out.read_text()
