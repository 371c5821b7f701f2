"""Absolute SLO rules on one run (``slo:`` in a scenario, ``--slo`` in sweeps) and their verdicts.

No I/O here: rules in, verdicts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infbench.analysis.metrics import HIGHER_IS_BETTER, LATENCY_METRICS, METRIC_PATHS, metric_value
from infbench.errors import ScenarioError
from infbench.figure_format import Unit, format_figure
from infbench.results.records import PhaseSummary
from infbench.units import parse_duration, parse_percent

__all__ = [
    "Rule",
    "RuleResult",
    "check_run",
    "goodput_latency_ms",
    "parse_slo",
    "parse_threshold",
]

# The SLO's latency rule a request must meet to count toward goodput: the strictest one a
# single request can be held to, the highest percentile given.
_GOODPUT_LATENCY = ("max", "p999", "p99", "p95", "p90", "mean", "p50")


@dataclass(frozen=True)
class Rule:
    """``metric`` must stay at or below ``threshold`` (or at or above, for rates)."""

    metric: str
    threshold: float
    text: str

    @property
    def higher_is_better(self) -> bool:
        return self.metric in HIGHER_IS_BETTER


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    phase: str
    value: float | None
    passed: bool

    @property
    def _unit(self) -> Unit:
        metric = self.rule.metric
        if metric == "token_mismatch":
            return "%"  # stored in percent
        return "ms" if metric in LATENCY_METRICS else "fraction" if metric == "error_rate" else "/s"

    @property
    def message(self) -> str:
        shown = "no data" if self.value is None else format_figure(self.value, self._unit, 4)
        op = "≥" if self.rule.higher_is_better else "≤"
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.phase}: {self.rule.metric} = {shown}, required {op} {self.rule.text}: {verdict}"
        )


def parse_threshold(metric: str, raw: object) -> float:
    if metric in LATENCY_METRICS:
        return parse_duration(raw) * 1000.0  # stored in milliseconds like the summaries
    if metric == "error_rate":
        if (percent := parse_percent(raw)) is not None:
            return percent
        value = float(raw)  # type: ignore[arg-type]
        if not 0 <= value <= 1:
            raise ValueError("error_rate is a fraction (0.01) or a percentage (1%)")
        return value
    if metric == "token_mismatch":
        return _percent_points(raw)
    return float(raw)  # type: ignore[arg-type]


def _percent_points(raw: object) -> float:
    """``1%`` -> 1.0: token_mismatch_pct is in percent. A bare number is refused: 0.01 could
    mean 1 % or 0.01 %."""
    percent = parse_percent(raw)
    if percent is None or percent < 0:
        raise ValueError("token_mismatch is a percentage such as 1%")
    return round(percent * 100.0, 9)  # 1.5% is 1.5, not 1.4999999999999998


def parse_slo(slo: Mapping[str, Any]) -> list[Rule]:
    """``{p99: 250ms, error_rate: 1%}`` -> rules; unknown metrics name the choices."""
    rules = []
    for metric, raw in slo.items():
        if metric not in METRIC_PATHS:
            choices = ", ".join(METRIC_PATHS)
            raise ScenarioError(f"slo.{metric}: unknown metric; choose from {choices}")
        try:
            rules.append(Rule(metric, parse_threshold(metric, raw), str(raw)))
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"slo.{metric}: {exc}, got {raw!r}") from None
    return rules


def goodput_latency_ms(rules: Sequence[Rule]) -> float | None:
    """The latency bound (ms) a request must meet to count toward goodput; None: no bound."""
    by_metric = {rule.metric: rule for rule in rules}
    bound = next((by_metric[m] for m in _GOODPUT_LATENCY if m in by_metric), None)
    return bound.threshold if bound is not None else None


def check_run(rules: list[Rule], phases: Sequence[PhaseSummary]) -> list[RuleResult]:
    """Every rule against every measured phase; a phase with no data for a metric fails it."""
    results = []
    for phase in phases:
        for rule in rules:
            value = metric_value(phase, rule.metric)
            if value is None:
                passed = False
            elif rule.higher_is_better:
                passed = value >= rule.threshold
            else:
                passed = value <= rule.threshold
            results.append(RuleResult(rule, phase.name, value, passed))
    return results
