"""Every table infbench prints keeps every figure and header whole, at 40, 60, 80 and 100
columns (golden style: rich consoles writing into a StringIO): the run summary of a plain and
of a streamed run, the compare, sweep and resilience tables. Wide enough, a table is one table;
narrower, its columns fold or its rows stack, never with rich's ``…``."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from infbench.compare.comparison import compare
from infbench.figure_format import Unit, format_figure
from infbench.report.compare_views import print_table
from infbench.report.console import print_run
from infbench.report.resilience_view import print_resilience
from infbench.report.sweep_views import print_grid, print_levels
from infbench.report.tables import fit, new_grid
from infbench.results.records import RunRecord

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
WIDTHS = (40, 60, 80, 100)
# what the run summary shows of each phase: (section, key, unit); None section = the phase
SHOWN: tuple[tuple[str | None, str, Unit], ...] = (
    *((None, key, "count") for key in ("ok",)),
    *((None, key, "plain") for key in ("offered_rps", "achieved_rps", "goodput_rps")),
    *(("latency_ms", key, "ms") for key in ("p50", "p90", "p99", "p999", "max")),
    *(("service_ms", key, "ms") for key in ("p50", "p99")),
)
STREAMED: tuple[tuple[str | None, str, Unit], ...] = (
    ("ttft_ms", "p50", "ms"),
    ("ttft_ms", "p99", "ms"),
    ("tpot_ms", "p50", "ms"),
    ("tpot_ms", "p99", "ms"),
    ("itl_ms", "p99", "ms"),
    (None, "output_tps", "plain"),
    (None, "output_tokens", "count"),
)


def render(width: int, draw: Any, *args: Any) -> str:
    console = Console(file=StringIO(), width=width, color_system=None)
    draw(console, *args)
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return text


def assert_whole(text: str, width: int, figures: list[str]) -> None:
    assert "…" not in text, text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width, text
    missing = [figure for figure in figures if figure not in text]
    assert not missing, f"not shown whole at {width} columns: {missing}\n{text}"


def figures_of(data: dict[str, Any], shown: tuple[tuple[str | None, str, Unit], ...]) -> list[str]:
    """Each shown figure of run.json's phases, as the formatter writes it."""
    out = []
    for phase in data["phases"]:
        for section, key, unit in shown:
            value = (phase[section] if section else phase)[key]
            out.append(format_figure(value, unit))
    return out


def golden_run(name: str = "base") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / name / "run.json").read_text())
    return data


def streamed_run() -> dict[str, Any]:
    """The golden run made an LLM run of about a second an answer, with token figures."""
    data = golden_run()
    for phase in data["phases"]:
        for section in ("latency_ms", "service_ms"):
            phase[section] = {k: v * 51.7 for k, v in phase[section].items()}  # 1,032.… ms
        phase["lag_ms"] = {"p50": 0.041, "p99": 0.923, "max": 2.5}
        phase["ttft_ms"] = {q: 81.4 + i for i, q in enumerate(("p50", "p90", "p99", "max"))}
        phase["tpot_ms"] = {"p50": 15.751, "p99": 15.863}
        phase["itl_ms"] = {"p50": 15.7, "p99": 16.415}
        phase["output_tokens"], phase["output_tps"] = 1_234_567, 8_765.4
    return data


@pytest.mark.parametrize("width", WIDTHS)
def test_a_plain_runs_tables_keep_every_figure_whole(width: int) -> None:
    data = golden_run()
    text = render(width, print_run, RunRecord.from_json(data), [])
    headers = ["requests", "achieved/s", "p99.9", "svc p50", "lag p99"]
    assert_whole(text, width, figures_of(data, SHOWN) + headers)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_streamed_runs_tables_keep_every_figure_whole(width: int) -> None:
    data = streamed_run()
    text = render(width, print_run, RunRecord.from_json(data), [])
    figures = figures_of(data, SHOWN) + figures_of(data, STREAMED)
    assert "1.03 s" in figures and "923 µs" in text  # the units adapt
    assert_whole(text, width, [*figures, "TTFT p50", "out tokens"])


def test_at_80_columns_a_run_is_one_table_each_and_narrower_it_folds() -> None:
    run = RunRecord.from_json(streamed_run())
    wide, narrow = render(80, print_run, run, []), render(60, print_run, run, [])
    assert wide.count("phase ") == 3  # traffic, latency, tokens: each whole on one table
    assert narrow.count("phase ") > 3  # the same tables folded in two


def test_too_narrow_to_fold_the_rows_stack() -> None:
    grid = new_grid("wide", ("phase", *(f"figure {i}" for i in range(6))))
    grid.add_row("a-rather-long-phase-name", *(format_figure(1032.4 * i, "ms") for i in range(6)))
    text = render(30, lambda console: [console.print(t) for t in fit(console, grid)])
    assert_whole(text, 30, ["a-rather-long-phase-name", "figure 5", "5.16 s"])


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_tables_keep_every_figure_whole(width: int) -> None:
    comparison = compare(GOLDEN / "base", GOLDEN / "cand-slow")
    text = render(width, lambda console: print_table(comparison, console))
    figures = [row.spec.format(v) for row in comparison.rows for v in (row.base, row.cand)]
    changes = [row.spec.format_change(row.change) for row in comparison.rows]
    assert_whole(text, width, [*figures, *changes, "95% CI", "verdict"])


def sweep_doc() -> dict[str, Any]:
    level = {"rate": 40.0, "achieved_rps": 39.87, "p50_ms": 1032.4, "p99_ms": 2345.6,
             "error_rate": 0.0123, "valid": True, "runs": ["a", "b"],
             "verdict": {"passed": False, "confident": True, "estimates": [
                 {"metric": "p99", "value": 2345.6, "ci95": [2100.0, 2600.0]}]}}  # fmt: skip
    phases = [{"phase": "steady", "p50_ms": 12.34, "p99_ms": 923.4, "achieved_rps": 153.7,
               "error_rate": 0.001}]  # fmt: skip
    compared = [{"phase": "steady", "metric": "p99", "cand": 923.4, "change": 0.25,
                 "verdict": "worse"}]  # fmt: skip
    points = [{"point": 1, "label": "client.connections=8", "phases": phases},
              {"point": 2, "label": "client.connections=64", "phases": copy.deepcopy(phases),
               "comparison": compared}]  # fmt: skip
    return {"levels": [level, {**level, "rate": 80.0}], "points": points}


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_tables_keep_every_figure_whole(width: int) -> None:
    doc = sweep_doc()

    def draw(console: Console) -> None:
        print_levels(console, doc["levels"], header=True, rules=["p99"])
        print_grid(console, doc["points"])

    text = render(width, draw)
    figures = ["39.9", "1.03 s", "2.35 s", "1.23%", "2.10 s–2.60 s", "923.4 ms +25.0% worse"]
    assert_whole(text, width, [*figures, "achieved/s", "error_rate", "12.34 ms", "153.7/s"])


def faults() -> Iterator[dict[str, Any]]:
    yield {"action": "kill-server", "time_s": 12.5, "first_error_after_s": 0.0123,
           "error_window_s": 1.25, "failed_requests": 12_345, "recovery_s": 3.456,
           "baseline_p50_ms": 1032.4}  # fmt: skip
    yield {"action": "pause", "time_s": 30.0, "failed_requests": 0, "baseline_p50_ms": 0.923}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_resilience_table_keeps_every_figure_whole(width: int) -> None:
    data = golden_run()
    data["resilience"] = {"faults": list(faults()), "restarts": []}
    text = render(width, print_resilience, RunRecord.from_json(data))
    figures = ["12.5 s", "12.3 ms", "1.25 s", "12,345", "3.46 s", "1.03 s", "923 µs", "never"]
    assert_whole(text, width, [*figures, "recovery", "p50 before"])
