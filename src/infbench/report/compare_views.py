"""Views of one Comparison (and its gate results): rich table, markdown, JSON, JUnit XML.

Interchangeable formatters of the same value; none of them computes anything.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from infbench.compare.comparison import Comparison, MetricComparison
from infbench.compare.gate import CompareRule, CompareRuleResult
from infbench.report.tables import Column, Grid, fit

__all__ = [
    "JSON_FORMAT_VERSION",
    "format_p",
    "print_table",
    "to_json",
    "to_junit",
    "to_markdown",
]

JSON_FORMAT_VERSION = 1
_STYLES = {"worse": "bold red", "better": "bold green", "~": "dim"}
GateResults = Sequence[CompareRuleResult] | None


# --- shared wording --------------------------------------------------------------------------


def _method(comparison: Comparison) -> str:
    settings = comparison.settings
    if comparison.method == "mann-whitney":
        test = "Mann-Whitney U across runs, Hodges-Lehmann interval"
    else:
        test = f"block bootstrap over 1-s intervals, {settings.resamples} resamples"
    return (
        f"{test}, seed {settings.seed}; a change counts when p < {settings.alpha:g} and beyond "
        f"{settings.noise * 100:g}% ({settings.error_rate_noise * 100:g}pp for error_rate)"
    )


def _tally(comparison: Comparison) -> str:
    counts = {verdict: 0 for verdict in ("worse", "better", "~")}
    for row in comparison.rows:
        counts[row.verdict] += 1
    shown = ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n)
    return f"verdicts: {shown or 'none (no phase in common)'}"


def _ci(row: MetricComparison) -> str:
    if row.ci is None:
        return "–"
    lo, hi = (row.spec.format_change(bound) for bound in row.ci)
    unit = "pp" if row.spec.absolute else "%"
    return f"{lo.removesuffix(unit)} to {hi}"  # words, not "…": an ellipsis reads as a cut


def format_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p(row: MetricComparison) -> str:
    return f"{format_p(row.p_value)} ({row.n[0]}+{row.n[1]})"


def _cells(row: MetricComparison) -> list[str]:
    spec = row.spec
    return [
        spec.format(row.base),
        spec.format(row.cand),
        spec.format_change(row.change),
        _ci(row),
        _p(row),
    ]


def _gate_summary(results: Sequence[CompareRuleResult]) -> str:
    failed = sum(not r.passed for r in results)
    if failed:
        return f"gate FAILED: {failed} of {len(results)} rule checks failed"
    return f"gate passed: {len(results)} rule checks"


def _gate_cells(result: CompareRuleResult) -> list[str]:
    spec = result.rule.spec
    return [
        result.phase,
        result.rule.text,
        spec.format(result.base),
        spec.format(result.cand),
        spec.format_change(result.change),
        result.basis,
        "ok" if result.passed else "FAILED",
    ]


_GATE_HEADER = ["phase", "rule", "base", "cand", "change", "basis", "result"]


# --- rich table ------------------------------------------------------------------------------


# Fixed widths keep the per-phase tables aligned with one another (and within 80 columns).
_COLUMNS: tuple[tuple[str, int], ...] = (
    ("metric", 12),
    ("base", 8),
    ("cand", 8),
    ("delta", 7),
    ("95% CI", 16),
    ("p", 6),
    ("verdict", 7),
)


def _n_text(comparison: Comparison, row: MetricComparison) -> str:
    if comparison.method == "mann-whitney":
        return f"{row.n[0]} vs {row.n[1]} runs"
    return f"{row.n[0]} s vs {row.n[1]} s of intervals"


def _phase_grid(comparison: Comparison, rows: list[MetricComparison]) -> Grid:
    title = Text.assemble((rows[0].phase, "bold"), f"  ({_n_text(comparison, rows[0])})")
    columns = tuple(
        Column(name, "left" if name in ("metric", "verdict") else "right", width)
        for name, width in _COLUMNS
    )
    grid = Grid(title, columns)
    for row in rows:
        verdict = Text(row.verdict, style=_STYLES[row.verdict])
        grid.add_row(row.metric, *_cells(row)[:4], format_p(row.p_value), verdict)
    return grid


def print_table(comparison: Comparison, console: Console, gate: GateResults = None) -> None:
    """benchstat-like: a table per phase, verdicts coloured; the method and warnings after."""
    console.print(Text(f"{comparison.base} → {comparison.candidate}", style="bold"))
    for phase in comparison.phases:
        rows = [row for row in comparison.rows if row.phase == phase]
        if rows:
            for table in fit(console, _phase_grid(comparison, rows)):
                console.print(table)
    console.print(Text(_tally(comparison), style="bold"))
    console.print(Text(_method(comparison), style="dim"))
    for warning in comparison.warnings:
        console.print(Text(f"warning: {warning.message}", style="yellow"))
    if gate:
        _print_gate(gate, console)


def _print_gate(results: Sequence[CompareRuleResult], console: Console) -> None:
    failed = any(not r.passed for r in results)
    console.print(Text(_gate_summary(results), style="bold red" if failed else "bold green"))
    columns = (*(Column(h, "left") for h in ("result", "phase", "rule")),
               Column("base → cand"), Column("change"), Column("basis", "left"))  # fmt: skip
    grid = Grid(None, columns, show_header=False)
    for result in results:
        phase, rule, base, cand, change, basis, verdict = _gate_cells(result)
        style = "bold red" if not result.passed else "green"
        grid.add_row(Text(verdict, style=style), phase, rule, f"{base} → {cand}", change, basis)
    for table in fit(console, grid):
        console.print(table)


# --- markdown --------------------------------------------------------------------------------


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def to_markdown(comparison: Comparison, gate: GateResults = None) -> str:
    """GitHub-flavoured markdown for a pull-request comment or $GITHUB_STEP_SUMMARY."""
    lines = [
        "### infbench compare",
        "",
        f"`{comparison.base}` → `{comparison.candidate}`",
        "",
        f"**{_tally(comparison)}** · _{_method(comparison)}_",
        "",
        _md_row(["phase", "metric", "base", "cand", "delta", "95% CI", "p (n)", "verdict"]),
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in comparison.rows:
        verdict = f"**{row.verdict}**" if row.verdict != "~" else "~"
        lines.append(_md_row([row.phase, row.metric, *_cells(row), verdict]))
    if comparison.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- {w.message}" for w in comparison.warnings]
    if gate:
        lines += ["", f"**{_gate_summary(gate)}**", "", _md_row(_GATE_HEADER)]
        lines.append("|---|---|--:|--:|--:|---|---|")
        lines += [_md_row(_gate_cells(r)) for r in gate]
    return "\n".join(lines) + "\n"


# --- JSON ------------------------------------------------------------------------------------


def _num(value: float | None) -> float | None:
    """Finite floats at 6 significant digits (stable across machines); None otherwise."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def _row_json(row: MetricComparison) -> dict[str, Any]:
    return {
        "phase": row.phase,
        "metric": row.metric,
        "unit": row.spec.unit if not row.spec.absolute else "fraction",
        "base": _num(row.base),
        "candidate": _num(row.cand),
        "change": _num(row.change),
        "change_kind": "absolute" if row.spec.absolute else "relative",
        "ci95": None if row.ci is None else [_num(row.ci[0]), _num(row.ci[1])],
        "p_value": _num(row.p_value),
        "n": list(row.n),
        "method": row.method,
        "significant": row.significant,
        "verdict": row.verdict,
    }


def _gate_json(result: CompareRuleResult) -> dict[str, Any]:
    return {
        "rule": result.rule.text,
        "metric": result.rule.metric,
        "kind": result.rule.kind,
        "threshold": _num(result.rule.threshold),
        "phase": result.phase,
        "base": _num(result.base),
        "candidate": _num(result.cand),
        "change": _num(result.change),
        "basis": result.basis,
        "passed": result.passed,
    }


def to_json(comparison: Comparison, gate: GateResults = None) -> str:
    settings = comparison.settings
    document = {
        "infbench_compare": JSON_FORMAT_VERSION,
        "base": comparison.base,
        "candidate": comparison.candidate,
        "method": comparison.method,
        "n_unit": "runs" if comparison.method == "mann-whitney" else "seconds",
        "repetitions": list(comparison.repetitions),
        "settings": {
            "alpha": settings.alpha,
            "noise": settings.noise,
            "error_rate_noise": settings.error_rate_noise,
            "resamples": settings.resamples,
            "seed": settings.seed,
        },
        "phases": list(comparison.phases),
        "rows": [_row_json(row) for row in comparison.rows],
        "warnings": [{"code": w.code, "message": w.message} for w in comparison.warnings],
        "gate": None
        if gate is None
        else {"passed": all(r.passed for r in gate), "results": [_gate_json(r) for r in gate]},
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- JUnit XML -------------------------------------------------------------------------------


def to_junit(
    comparison: Comparison, gate: Sequence[CompareRuleResult], rules: Sequence[CompareRule]
) -> str:
    """One testcase per gate rule and phase, a failure for each failed one.

    Without rules there is one passing testcase, so CI reporters do not flag an empty suite.
    """
    failures = sum(not r.passed for r in gate)
    cases = len(gate) if gate else 1
    suites = ET.Element("testsuites", name="infbench compare")
    suites.set("tests", str(cases))
    suites.set("failures", str(failures))
    suite = ET.SubElement(suites, "testsuite", name="infbench compare", errors="0", skipped="0")
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("base", comparison.base),
        ("candidate", comparison.candidate),
        ("method", comparison.method),
        ("rules", ", ".join(rule.text for rule in rules)),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in gate:
        case = ET.SubElement(
            suite, "testcase", classname=f"infbench.compare.{result.phase}", name=result.rule.text
        )
        case.set("time", "0")
        if not result.passed:
            failure = ET.SubElement(case, "failure", type="regression", message=result.message)
            failure.text = result.message
    if not gate:
        ET.SubElement(suite, "testcase", classname="infbench.compare", name="comparison", time="0")
    if comparison.warnings:
        out = ET.SubElement(suite, "system-out")
        out.text = "\n".join(f"warning: {w.message}" for w in comparison.warnings)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
