"""The HTML page of ``infbench compare BASE CAND --html FILE``: a view of one Comparison (its
rows as the verdict table, its warnings, method and repetitions in the header) beside both
runs' plots overlaid."""

from __future__ import annotations

from html import escape
from pathlib import Path

from infbench.compare.comparison import Comparison, MetricComparison
from infbench.report.compare_views import format_p
from infbench.report.page import absent, facts, figure, page, table, write_atomically
from infbench.results.rundata import load_run_data
from infbench.results.rundir import RunResult

__all__ = ["write_compare_html"]


def _format_ci(row: MetricComparison) -> str:
    if row.ci is None:
        return "–"
    low, high = row.ci
    return f"[{row.spec.format_change(low)}, {row.spec.format_change(high)}]"


def _verdict_table(comparison: Comparison) -> str:
    rows = comparison.rows
    if not rows:
        return absent("Comparison", "no metric was compared")
    cells = [
        [
            *(r.phase, r.metric, r.spec.format(r.base), r.spec.format(r.cand)),
            *(r.spec.format_change(r.change), _format_ci(r), format_p(r.p_value), r.verdict),
        ]
        for r in rows
    ]
    css = [["", "", "", "", "", "", "", r.verdict if r.verdict != "~" else ""] for r in rows]
    headers = ["phase", "metric", "base", "candidate", "change", "95% CI", "p", "verdict"]
    return table(headers, cells, table_id="comparison", classes=css)


def _warnings(comparison: Comparison) -> str:
    if not comparison.warnings:
        return ""
    body = "".join(f'<li class="warn">{escape(w.message)}</li>' for w in comparison.warnings)
    return f'<h2>Warnings</h2><ul id="warnings">{body}</ul>'


def _run_card(label: str, result: RunResult) -> str:
    run = result.record
    return facts(
        label,
        [
            ("directory", result.path),
            ("scenario", run.scenario.name),
            ("started", run.timings.started_utc),
            ("status", run.status),
            ("valid", "yes" if run.valid else "NO: " + "; ".join(run.invalid_reasons)),
            ("repetitions", len(run.repetitions or ()) or None),
        ],
        f"{label}-run",
    )


def _method(comparison: Comparison) -> str:
    base_runs, cand_runs = comparison.repetitions
    return f"method: {comparison.method} · runs per side: {base_runs} vs {cand_runs}"


def write_compare_html(
    comparison: Comparison, base: RunResult, candidate: RunResult, out: Path
) -> Path:
    """Render the comparison page to ``out``; ResultFormatError when a run's files are damaged."""
    from infbench.report.compare_plots import compare_latency_over_time, compare_percentiles
    from infbench.report.token_plots import compare_token_plots

    base_data = load_run_data(base, with_rows=False)
    cand_data = load_run_data(candidate, with_rows=False)
    phases = list(comparison.phases)
    plots = [
        ("Percentile distributions", compare_percentiles(base_data, cand_data, phases)),
        *compare_token_plots(base_data, cand_data, phases),  # streamed runs only
        ("Latency over time", compare_latency_over_time(base_data, cand_data)),
    ]
    body = [
        "<h1>infbench comparison</h1>",
        f'<p class="sub">{escape(_method(comparison))}</p>',
        '<div class="grid">'
        + _run_card("base", base)
        + _run_card("candidate", candidate)
        + "</div>",
        _warnings(comparison),
        "<h2>Verdicts</h2>",
        "<p>better / worse only when the change is statistically significant <em>and</em> "
        "beyond the noise threshold; ~ means no change shown.</p>",
        _verdict_table(comparison),
        "<h2>Plots</h2>",
    ]
    body += [
        figure(p) if p is not None else absent(t, "nothing both runs measured") for t, p in plots
    ]
    return write_atomically(out, page("infbench comparison", "\n".join(body)))
