"""Views of a sweep: console lines and tables, ``sweep.json``, ``summary.md`` and the plot of
latency against offered load. They read the sweep document and nothing else."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from infbench.analysis.metrics import COMPARE_METRICS
from infbench.figure_format import MISSING, format_figure
from infbench.report.cost_view import write_cost_plot
from infbench.report.sweep_plot import write_sweep_plot
from infbench.report.tables import fit, new_grid

if TYPE_CHECKING:
    from infbench.analysis.search import LevelVerdict, SearchResult
    from infbench.compare.comparison import Comparison

__all__ = [
    "grid_rows",
    "markdown",
    "print_grid",
    "print_levels",
    "print_result",
    "result_json",
    "result_text",
    "verdict_json",
    "write_outputs",
]

GRID_METRICS = ("p50", "p99", "achieved_rps", "error_rate")
_LEVEL_COLUMNS = ("rate/s", "achieved/s", "p50", "p99", "errors", "valid")


def _rate(value: Any) -> str:
    """An offered or capacity rate, to four significant digits (153.7, 38,050)."""
    return format_figure(value, digits=4)


def _level_cells(level: dict[str, Any]) -> list[str]:
    return [
        f"{level['rate']:.4g}" if level.get("rate") is not None else MISSING,  # as it was asked
        format_figure(level.get("achieved_rps")),
        format_figure(level.get("p50_ms"), "ms"),
        format_figure(level.get("p99_ms"), "ms"),
        format_figure(level.get("error_rate"), "fraction"),
        "yes" if level.get("valid") else "NO",
    ]


def _interval(estimate: dict[str, Any]) -> str:
    low, high = estimate["ci95"]
    if low is None or high is None:
        return f"{estimate['metric']} ?"  # too few values beyond the percentile to tell
    if estimate["metric"] == "error_rate":
        return f"errors {low * 100:.3g}–{high * 100:.3g}%"
    return f"{estimate['metric']} {format_figure(low, 'ms')}–{format_figure(high, 'ms')}"


def _verdict_text(level: dict[str, Any]) -> str:
    """``pass ×2  p99 41.2 ms–52.0 ms errors 0–0.9%``; a ``?`` marks an uncertain verdict."""
    verdict = level.get("verdict")
    if not verdict:
        return ""
    text = ("pass" if verdict["passed"] else "FAIL") + ("" if verdict["confident"] else "?")
    intervals = " ".join(_interval(e) for e in verdict["estimates"])
    return f"{text} ×{len(level.get('runs', []))}  {intervals}"


_LEVEL_WIDTHS = (7, 10, 8, 8, 7, 5)


def print_levels(
    console: Console, levels: list[dict[str, Any]], header: bool, rules: Sequence[Any] | None = None
) -> None:
    """One fixed-width line per level as it finishes (a table would wait for the last); on a
    terminal too narrow for the line, the level as a table folded to fit. The verdict follows
    on its own line when the two do not fit one, never broken. With ``rules`` (the SLO, as
    parsed or as sweep.json holds it) the header names the verdict column."""
    fixed = sum(_LEVEL_WIDTHS) + 2 * (len(_LEVEL_WIDTHS) - 1) <= console.width
    if header and fixed:
        line = "  ".join(n.rjust(w) for n, w in zip(_LEVEL_COLUMNS, _LEVEL_WIDTHS, strict=True))
        if rules and len(line) + 23 <= console.width:  # else the verdicts go below each level
            line += "  verdict ×runs, 95% CI"
        console.print(line, style="bold", highlight=False, soft_wrap=True)
    for level in levels:
        cells = _level_cells(level)
        verdict = _verdict_text(level)
        if fixed:
            line = "  ".join(c.rjust(w) for c, w in zip(cells, _LEVEL_WIDTHS, strict=True))
            if verdict and len(line) + 2 + len(verdict) <= console.width:
                line, verdict = f"{line}  {verdict}", ""
            console.print(line, highlight=False, soft_wrap=True)
        else:
            grid = new_grid(None, _LEVEL_COLUMNS)
            grid.add_row(*cells)
            for table in fit(console, grid):
                console.print(table)
        if verdict:
            console.print(f"  {verdict}", highlight=False, soft_wrap=True)


def grid_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """The compared figures of a grid point against the first, per phase."""
    return [
        {
            "phase": row.phase,
            "metric": row.metric,
            "base": row.base,
            "cand": row.cand,
            "change": row.change,
            "ci95": list(row.ci) if row.ci else None,
            "p_value": row.p_value,
            "verdict": row.verdict,
        }
        for row in comparison.rows
        if row.metric in GRID_METRICS
    ]


def _grid_cell(row: dict[str, Any]) -> str:
    spec = COMPARE_METRICS[row["metric"]]
    return f"{spec.format(row['cand'])} {spec.format_change(row['change'])} {row['verdict']}"


def _grid_cells(point: dict[str, Any], level: dict[str, Any]) -> list[str]:
    """The point's figures; beside them, for points after the first, change and verdict."""
    compared = {r["metric"]: r for r in point.get("comparison", []) if r["phase"] == level["phase"]}
    own = {"p50": format_figure(level["p50_ms"], "ms", 4),
           "p99": format_figure(level["p99_ms"], "ms", 4),
           "achieved_rps": format_figure(level["achieved_rps"], "/s", 4),
           "error_rate": format_figure(level["error_rate"], "fraction")}  # fmt: skip
    return [_grid_cell(compared[m]) if m in compared else own[m] for m in GRID_METRICS]


def print_grid(console: Console, points: list[dict[str, Any]]) -> None:
    if not points:
        return
    for point in points:
        console.print(f"point {point['point']}: {point['label']}", highlight=False, soft_wrap=True)
    grid = new_grid("grid: each point against point 1", ("point", "phase", *GRID_METRICS), keys=2)
    for point in points:
        for level in point["phases"]:
            grid.add_row(str(point["point"]), level["phase"], *_grid_cells(point, level))
    for table in fit(console, grid):
        console.print(table)
    console.print("verdicts: better / worse / ~ (no significant change beyond noise)", style="dim")


def result_text(doc: dict[str, Any]) -> str | None:
    """The find-max answer in one sentence: the capacity interval and how sure it is."""
    result = doc.get("result")
    if not result:
        return None
    low, high = result["interval"]
    slo = ", ".join(f"{r['metric']} ≤ {r['threshold']}" for r in doc.get("slo", []))
    if low is None:
        text = f"no tested rate met the SLO ({slo}); the lowest failing was {_rate(high)}/s"
    elif high is None:
        text = f"every tested rate met the SLO ({slo}); capacity is at least {_rate(low)}/s"
    else:
        text = (
            f"highest rate meeting the SLO ({slo}): {_rate(low)} req/s; first failing "
            f"{_rate(high)} req/s; the capacity lies in [{_rate(low)}, {_rate(high)}) req/s"
        )
    sure = "" if result["confident"] else " (a bounding level stayed uncertain)"
    return f"{text}{sure}; {doc.get('runs', 0)} runs, {result['stopped']}"


def print_result(console: Console, doc: dict[str, Any]) -> None:
    text = result_text(doc)
    if text is None:
        return
    console.print(text, style="bold", highlight=False, soft_wrap=True)
    invalid = [f"{lv['rate']:.4g}" for lv in doc.get("levels", []) if not lv.get("valid")]
    if invalid:
        console.print(
            f"[yellow]warning:[/] the runs at {', '.join(invalid)} req/s were invalid (the "
            "generator fell behind); their latencies include its own delay"
        )


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# sweep ({doc['mode']}) of {doc['scenario_name']}", ""]
    levels = doc.get("levels") or []
    if levels:
        extra = ["verdict"] if doc["mode"] == "find-max" else []
        lines += ["| " + " | ".join([*_LEVEL_COLUMNS, *extra]) + " |",
                  "|" + "---|" * (len(_LEVEL_COLUMNS) + len(extra))]  # fmt: skip
        for level in sorted(levels, key=lambda lv: lv["rate"]):
            cells = _level_cells(level) + ([_verdict_text(level)] if extra else [])
            lines.append("| " + " | ".join(cells) + " |")
    points = doc.get("points") or []
    if points:
        lines += ["| point | settings | phase | " + " | ".join(GRID_METRICS) + " |",
                  "|" + "---|" * (3 + len(GRID_METRICS))]  # fmt: skip
    for point in points:
        for level in point["phases"]:
            cells = [point["point"], point["label"], level["phase"], *_grid_cells(point, level)]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    answer = result_text(doc)
    if answer is not None:
        lines += ["", answer]
    return "\n".join(lines) + "\n"


def verdict_json(verdict: LevelVerdict) -> dict[str, Any]:
    return {
        "passed": verdict.passed,
        "confident": verdict.confident,
        "reason": verdict.reason,
        "estimates": [
            {"metric": e.metric, "value": e.value, "ci95": [e.low, e.high]}
            for e in verdict.estimates
        ],
    }


def _stopped(result: SearchResult, precision: float) -> str:
    """Why the find-max search ended, in the sweep's words."""
    if result.stopped == "budget" and not result.bracketed:
        return "budget spent before the capacity was bracketed"
    words = {
        "precision": f"bracket within {precision:.0%}",
        "budget": "budget spent",
        "ceiling": "reached --max-rate",
        "floor": "no tested rate met the SLO",
    }
    return words.get(result.stopped, result.stopped)


def result_json(result: SearchResult, precision: float) -> dict[str, Any]:
    return {
        "max_rate": result.last_pass,
        "first_failing_rate": result.first_fail,
        "interval": [result.last_pass, result.first_fail],
        "confident": result.confident,
        "stopped": _stopped(result, precision),
    }


def write_outputs(directory: Path, doc: dict[str, Any]) -> None:
    """sweep.json (atomically, so a reader never sees half), summary.md and the plot."""
    plot = write_sweep_plot(directory, doc)
    if plot:
        doc["plot"] = plot
    doc["cost_plot"] = write_cost_plot(directory, doc)  # report/cost_view.py: priced levels
    (directory / "summary.md").write_text(markdown(doc), encoding="utf-8")
    partial = directory / "sweep.json.partial"
    partial.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, directory / "sweep.json")
