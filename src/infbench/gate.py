"""Rules and verdicts: absolute SLOs on one run (``slo:``), relative rules on a comparison.

No I/O here: rules in, verdicts out. The same Rule type serves ``slo:`` in a scenario and
``--fail-on`` in ``infbench compare``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ScenarioError
from .units import parse_duration

__all__ = ["METRIC_PATHS", "Rule", "RuleResult", "check_run", "metric_value", "parse_slo"]

# metric name -> (section of a phases[] entry, key); None section means a top-level key.
METRIC_PATHS: dict[str, tuple[str | None, str]] = {
    "p50": ("latency_ms", "p50"),
    "p90": ("latency_ms", "p90"),
    "p95": ("latency_ms", "p95"),
    "p99": ("latency_ms", "p99"),
    "p999": ("latency_ms", "p999"),
    "max": ("latency_ms", "max"),
    "mean": ("latency_ms", "mean"),
    "service_p50": ("service_ms", "p50"),
    "service_p99": ("service_ms", "p99"),
    "ttfb_p50": ("ttfb_ms", "p50"),
    "ttfb_p99": ("ttfb_ms", "p99"),
    "error_rate": (None, "error_rate"),
    "achieved_rps": (None, "achieved_rps"),
    "goodput_rps": (None, "goodput_rps"),
}
HIGHER_IS_BETTER = frozenset({"achieved_rps", "goodput_rps"})
LATENCY_METRICS = frozenset(k for k, (section, _) in METRIC_PATHS.items() if section)
_PERCENT_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+)\s*%\s*$")


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
    def message(self) -> str:
        shown = "no data" if self.value is None else f"{self.value:g}"
        op = "≥" if self.rule.higher_is_better else "≤"
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.phase}: {self.rule.metric} = {shown}, required {op} {self.rule.text}: {verdict}"
        )


def metric_value(phase: dict[str, Any], metric: str) -> float | None:
    section, key = METRIC_PATHS[metric]
    holder = phase.get(section, {}) if section else phase
    value = holder.get(key) if isinstance(holder, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _threshold(metric: str, raw: object) -> float:
    if metric in LATENCY_METRICS:
        return parse_duration(raw) * 1000.0  # stored in milliseconds like the summaries
    if metric == "error_rate":
        if isinstance(raw, str) and (match := _PERCENT_RE.match(raw)):
            return float(match.group(1)) / 100.0
        value = float(raw)  # type: ignore[arg-type]
        if not 0 <= value <= 1:
            raise ValueError("error_rate is a fraction (0.01) or a percentage (1%)")
        return value
    return float(raw)  # type: ignore[arg-type]


def parse_slo(slo: dict[str, Any]) -> list[Rule]:
    """``{p99: 250ms, error_rate: 1%}`` -> rules; unknown metrics name the choices."""
    rules = []
    for metric, raw in slo.items():
        if metric not in METRIC_PATHS:
            choices = ", ".join(METRIC_PATHS)
            raise ScenarioError(f"slo.{metric}: unknown metric; choose from {choices}")
        try:
            rules.append(Rule(metric, _threshold(metric, raw), str(raw)))
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"slo.{metric}: {exc}, got {raw!r}") from None
    return rules


def check_run(rules: list[Rule], phases: list[dict[str, Any]]) -> list[RuleResult]:
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
            results.append(RuleResult(rule, phase["name"], value, passed))
    return results
