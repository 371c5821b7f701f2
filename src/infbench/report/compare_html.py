"""The HTML page of ``infbench compare BASE CAND --html FILE``.

``comparison`` is read duck-typed, so this page depends only on these attributes of it
(compare.Comparison has them all; any missing one is simply not shown):

- ``rows``: items with ``phase``, ``metric``, ``base``, ``cand``, ``change``, ``ci`` (a pair
  or None), ``p_value`` and ``verdict`` (``better`` | ``worse`` | ``~``);
- ``phases``: the phase names compared (default: those both runs have);
- ``warnings``: items with ``message`` (or plain strings);
- ``method`` and ``repetitions``: shown in the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from infbench.analysis.metrics import COMPARE_METRICS
from infbench.report.page import absent, facts, figure, page, table, write_atomically
from infbench.report.rundata import load_run_data
from infbench.results.rundir import RunResult

__all__ = ["VerdictRow", "verdict_rows", "write_compare_html"]


@dataclass(frozen=True)
class VerdictRow:
    phase: str
    metric: str
    base: str
    cand: str
    change: str
    ci: str
    p_value: str
    verdict: str


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _format(metric: str, value: object) -> str:
    number = _number(value)
    spec = COMPARE_METRICS.get(metric)
    if spec is not None:
        return spec.format(number)
    return "–" if number is None else f"{number:.4g}"


def _format_change(metric: str, value: object) -> str:
    number = _number(value)
    spec = COMPARE_METRICS.get(metric)
    if spec is not None:
        return spec.format_change(number)
    return "–" if number is None else f"{number * 100:+.1f}%"


def _format_ci(metric: str, ci: object) -> str:
    if not isinstance(ci, tuple | list) or len(ci) != 2:
        return "–"
    return f"[{_format_change(metric, ci[0])}, {_format_change(metric, ci[1])}]"


def _format_p(value: object) -> str:
    number = _number(value)
    if number is None:
        return "–"
    return "<0.001" if number < 0.001 else f"{number:.3f}"


def verdict_rows(comparison: object) -> list[VerdictRow]:
    """The comparison's rows as display strings (the adapter between Comparison and the page)."""
    rows = []
    for row in getattr(comparison, "rows", ()) or ():
        metric = str(getattr(row, "metric", "?"))
        rows.append(
            VerdictRow(
                phase=str(getattr(row, "phase", "")),
                metric=metric,
                base=_format(metric, getattr(row, "base", None)),
                cand=_format(metric, getattr(row, "cand", getattr(row, "candidate", None))),
                change=_format_change(metric, getattr(row, "change", None)),
                ci=_format_ci(metric, getattr(row, "ci", None)),
                p_value=_format_p(getattr(row, "p_value", None)),
                verdict=str(getattr(row, "verdict", "~")),
            )
        )
    return rows


def _verdict_table(comparison: object) -> str:
    rows = verdict_rows(comparison)
    if not rows:
        return absent("Comparison", "no metric was compared")
    cells = [
        [r.phase, r.metric, r.base, r.cand, r.change, r.ci, r.p_value, r.verdict] for r in rows
    ]
    css = [
        ["", "", "", "", "", "", "", r.verdict if r.verdict in ("better", "worse") else ""]
        for r in rows
    ]
    headers = ["phase", "metric", "base", "candidate", "change", "95% CI", "p", "verdict"]
    return table(headers, cells, table_id="comparison", classes=css)


def _warnings(comparison: object) -> str:
    items = [str(getattr(w, "message", w)) for w in getattr(comparison, "warnings", ()) or ()]
    if not items:
        return ""
    body = "".join(f'<li class="warn">{escape(item)}</li>' for item in items)
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


def _phases(comparison: object, base: RunResult, candidate: RunResult) -> list[str]:
    named = getattr(comparison, "phases", None)
    if named:
        return [str(p) for p in named]
    cand_names = {p.name for p in candidate.phases}
    return [p.name for p in base.phases if p.name in cand_names]


def _method(comparison: object) -> str:
    method = getattr(comparison, "method", None)
    reps: Any = getattr(comparison, "repetitions", None)
    text = f"method: {method}" if method else ""
    if isinstance(reps, tuple | list) and len(reps) == 2:
        text += f" · runs per side: {reps[0]} vs {reps[1]}"
    return text


def write_compare_html(
    comparison: object, base: RunResult, candidate: RunResult, out: Path
) -> Path:
    """Render the comparison page to ``out``; ResultFormatError when a run's files are damaged."""
    from infbench.report.compare_plots import compare_latency_over_time, compare_percentiles

    base_data = load_run_data(base, with_rows=False)
    cand_data = load_run_data(candidate, with_rows=False)
    phases = _phases(comparison, base, candidate)
    plots = [
        ("Percentile distributions", compare_percentiles(base_data, cand_data, phases)),
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
