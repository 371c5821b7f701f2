"""Rules and verdicts: absolute SLOs on one run (``slo:``), relative rules on a comparison.

No I/O here: rules in, verdicts out (the gate file arrives as text). The same thresholds and
metric names serve ``slo:`` in a scenario and ``--fail-on`` / ``--gate`` in ``infbench compare``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml

from infbench.errors import ScenarioError, UsageError
from infbench.units import parse_duration

if TYPE_CHECKING:
    from infbench.compare.comparison import Comparison, MetricComparison

__all__ = [
    "COMPARE_METRICS",
    "METRIC_PATHS",
    "SERVER_METRICS",
    "CompareRule",
    "CompareRuleResult",
    "GateConfig",
    "MetricSpec",
    "Rule",
    "RuleResult",
    "check_comparison",
    "check_run",
    "metric_value",
    "parse_gate_file",
    "parse_rule",
    "parse_slo",
    "server_value",
]

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


# --- comparisons: the metric catalogue, --fail-on rules and gate files ---------------------------

# Server-side figures (observe.py) by compare name -> key of run.json server.phases[<phase>].
SERVER_METRICS: dict[str, str] = {
    "server_p50": "duration_p50_ms",
    "server_p99": "duration_p99_ms",
    "server_cpu_pct": "cpu_pct_mean",
    "server_rss_mb": "rss_mb_max",
}


@dataclass(frozen=True)
class MetricSpec:
    """A compared metric: its unit, which way is better, and how a change is measured.

    ``absolute`` metrics (error_rate) change by differences (percentage points): a relative
    change from an error rate of zero means nothing.
    """

    name: str
    unit: Literal["ms", "req/s", "%", "MB"]
    higher_is_better: bool = False
    absolute: bool = False

    def format(self, value: float | None) -> str:
        """Four significant digits, never finer than a thousandth (a microsecond in ms)."""
        if value is None or not math.isfinite(value):
            return "–"
        if self.absolute:
            return f"{value * 100:.2f}%"  # error_rate is stored as a fraction
        magnitude = math.floor(math.log10(abs(value))) if value else 0
        text = f"{value:,.{min(3, max(0, 3 - magnitude))}f}"
        return text + {"ms": "ms", "req/s": "/s", "%": "%", "MB": "MB"}[self.unit]

    def format_change(self, change: float | None) -> str:
        if change is None or not math.isfinite(change):
            return "–"
        if self.absolute:
            return f"{change * 100:+.2f}pp"
        return f"{change * 100:+.1f}%"


COMPARE_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("p50", "ms"),
        MetricSpec("p90", "ms"),
        MetricSpec("p99", "ms"),
        MetricSpec("p999", "ms"),
        MetricSpec("mean", "ms"),
        MetricSpec("service_p50", "ms"),
        MetricSpec("service_p99", "ms"),
        MetricSpec("achieved_rps", "req/s", higher_is_better=True),
        MetricSpec("goodput_rps", "req/s", higher_is_better=True),
        MetricSpec("error_rate", "%", absolute=True),
        MetricSpec("server_p50", "ms"),
        MetricSpec("server_p99", "ms"),
        MetricSpec("server_cpu_pct", "%"),
        MetricSpec("server_rss_mb", "MB"),
    )
}


def server_value(run: dict[str, Any], phase: str, metric: str) -> float | None:
    """A server-side figure of one phase, or None when the run has no server metrics."""
    server = run.get("server")
    phases = server.get("phases") if isinstance(server, dict) else None
    figures = phases.get(phase) if isinstance(phases, dict) else None
    value = figures.get(SERVER_METRICS[metric]) if isinstance(figures, dict) else None
    return float(value) if isinstance(value, int | float) else None


RULE_SYNTAX = (
    "--fail-on takes METRIC=+N% (a relative rise, e.g. p99=+10%), METRIC=-N% (a relative drop, "
    "e.g. achieved_rps=-5%) or METRIC=VALUE (an absolute bound on the candidate, e.g. "
    "error_rate=0.5% or p99=250ms)"
)


@dataclass(frozen=True)
class CompareRule:
    """A gate rule on a comparison.

    relative: the candidate may be worse than the base by at most ``threshold`` (a fraction);
    absolute: the candidate's value must stay on the good side of ``threshold`` (metric units).
    """

    metric: str
    kind: Literal["relative", "absolute"]
    threshold: float
    text: str

    @property
    def spec(self) -> MetricSpec:
        return COMPARE_METRICS[self.metric]


def _rule_error(text: str, problem: str) -> UsageError:
    return UsageError(f"--fail-on {text!r}: {problem}", hint=RULE_SYNTAX)


def _relative_rule(metric: str, raw: str, text: str) -> CompareRule:
    spec = COMPARE_METRICS[metric]
    if spec.absolute:
        raise _rule_error(text, f"{metric} rules are absolute, e.g. {metric}=0.5%")
    percent = float(raw.rstrip("%"))
    bad_sign = "-" if spec.higher_is_better else "+"
    if raw[0] != bad_sign and percent != 0:
        way = "drop" if spec.higher_is_better else "rise"
        raise _rule_error(
            text,
            f"{'higher' if spec.higher_is_better else 'lower'} is better for {metric}, so a "
            f"relative rule gives the largest allowed {way}: {metric}={bad_sign}{abs(percent):g}%",
        )
    return CompareRule(metric, "relative", abs(percent) / 100.0, text)


def _absolute_rule(metric: str, raw: str, text: str) -> CompareRule:
    spec = COMPARE_METRICS[metric]
    if raw.endswith("%") and spec.unit != "%":
        sign = "-" if spec.higher_is_better else "+"
        raise _rule_error(text, f"a relative threshold needs its sign: {metric}={sign}{raw}")
    try:
        if spec.unit == "ms":
            threshold = parse_duration(raw) * 1000.0
        elif metric == "error_rate":
            threshold = _threshold("error_rate", raw)
        else:
            threshold = float(raw.rstrip("%").removesuffix("MB").removesuffix("/s"))
    except (TypeError, ValueError) as exc:
        raise _rule_error(text, str(exc)) from None
    if not math.isfinite(threshold):
        raise _rule_error(text, "the bound must be a finite number")
    return CompareRule(metric, "absolute", threshold, text)


def parse_rule(text: str) -> CompareRule:
    """``p99=+10%`` -> CompareRule; anything else raises UsageError naming --fail-on."""
    metric, sep, raw = text.partition("=")
    metric, raw = metric.strip(), raw.strip()
    if not sep or not metric or not raw:
        raise _rule_error(text, "expected METRIC=THRESHOLD")
    if metric not in COMPARE_METRICS:
        raise _rule_error(
            text, f"unknown metric {metric!r}; choose from {', '.join(COMPARE_METRICS)}"
        )
    if raw[0] in "+-":
        if not _PERCENT_RE.match(raw):
            raise _rule_error(text, "a signed threshold is a percentage, e.g. +10% or -5%")
        return _relative_rule(metric, raw, text)
    return _absolute_rule(metric, raw, text)


@dataclass(frozen=True)
class GateConfig:
    """A gate file: rules, optionally the phases they apply to and the noise thresholds."""

    rules: tuple[CompareRule, ...]
    phases: tuple[str, ...] | None = None
    noise: float | None = None
    error_rate_noise: float | None = None


_GATE_KEYS = ("rules", "phases", "noise", "error_rate_noise")


def _fraction(value: object, where: str) -> float:
    if isinstance(value, str) and (match := _PERCENT_RE.match(value)):
        fraction = float(match.group(1)) / 100.0
    elif isinstance(value, int | float) and not isinstance(value, bool):
        fraction = float(value)
    else:
        raise UsageError(f"{where}: expected a percentage such as 5% or a fraction, got {value!r}")
    if not 0 <= fraction < 1:
        raise UsageError(f"{where}: must lie between 0% and 100%, got {value!r}")
    return fraction


def _gate_rules(raw: object, source: str) -> tuple[CompareRule, ...]:
    if isinstance(raw, dict):
        texts = [f"{metric}={value}" for metric, value in raw.items()]
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        texts = list(raw)
    else:
        raise UsageError(f"{source}: `rules` must be a mapping such as {{p99: +10%}}")
    try:
        return tuple(parse_rule(text) for text in texts)
    except UsageError as exc:
        raise UsageError(f"{source}: rules: {exc.message}", hint=exc.hint) from None


def parse_gate_file(text: str, source: str) -> GateConfig:
    """``rules: {p99: +10%, error_rate: 0.5%}``, optional ``phases: [...]`` and ``noise: 5%``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or "rules" not in data:
        raise UsageError(f"{source}: expected a mapping with `rules:`, e.g. rules: {{p99: +10%}}")
    unknown = sorted(set(data) - set(_GATE_KEYS))
    if unknown:
        raise UsageError(f"{source}: unknown key {unknown[0]!r}; keys are {', '.join(_GATE_KEYS)}")
    phases = data.get("phases")
    if phases is not None and not (
        isinstance(phases, list) and all(isinstance(p, str) for p in phases)
    ):
        raise UsageError(f"{source}: `phases` must be a list of phase names")
    noise, floor = data.get("noise"), data.get("error_rate_noise")
    return GateConfig(
        rules=_gate_rules(data["rules"], source),
        phases=tuple(phases) if phases is not None else None,
        noise=None if noise is None else _fraction(noise, f"{source}: noise"),
        error_rate_noise=None if floor is None else _fraction(floor, f"{source}: error_rate_noise"),
    )


Basis = Literal["significant", "not significant", "point estimate", "absolute", "no data"]


@dataclass(frozen=True)
class CompareRuleResult:
    """One rule on one phase; ``basis`` says what the decision rests on."""

    rule: CompareRule
    phase: str
    base: float | None
    cand: float | None
    change: float | None
    passed: bool
    basis: Basis

    @property
    def message(self) -> str:
        spec = self.rule.spec
        values = f"{spec.format(self.base)} → {spec.format(self.cand)}"
        change = spec.format_change(self.change)
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.phase}: {self.rule.text}: {values} ({change}, {self.basis}): {verdict}"


def _check_relative(rule: CompareRule, row: MetricComparison) -> tuple[bool, Basis]:
    if row.change is None:
        return False, "no data"
    worse_by = -row.change if rule.spec.higher_is_better else row.change
    if not row.testable:
        return worse_by <= rule.threshold, "point estimate"
    if worse_by > rule.threshold and row.significant:
        return False, "significant"
    return True, "significant" if row.significant else "not significant"


def _check_absolute(rule: CompareRule, row: MetricComparison) -> tuple[bool, Basis]:
    if row.cand is None:
        return False, "no data"
    if rule.spec.higher_is_better:
        return row.cand >= rule.threshold, "absolute"
    return row.cand <= rule.threshold, "absolute"


def check_comparison(
    rules: list[CompareRule] | tuple[CompareRule, ...],
    comparison: Comparison,
    phases: tuple[str, ...] | None = None,
) -> list[CompareRuleResult]:
    """Every rule on every phase both runs share (or the phases named).

    A relative rule fails when the candidate is worse by more than its threshold AND the change
    is significant; where the data are too few to test, on the point estimate alone. A rule
    without data in a phase (a phase missing, no successful request) fails, and so does every
    rule when the runs share no phase.
    """
    results = []
    checked = phases if phases is not None else comparison.phases
    if not checked:  # a gate that checked nothing must not pass: no phase in common
        return [
            CompareRuleResult(r, "(no phase)", None, None, None, False, "no data") for r in rules
        ]
    for phase in checked:
        for rule in rules:
            row = comparison.row(phase, rule.metric)
            if row is None:
                results.append(CompareRuleResult(rule, phase, None, None, None, False, "no data"))
                continue
            check = _check_relative if rule.kind == "relative" else _check_absolute
            passed, basis = check(rule, row)
            results.append(
                CompareRuleResult(rule, phase, row.base, row.cand, row.change, passed, basis)
            )
    return results
