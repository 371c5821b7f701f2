"""The gate: ``--fail-on`` rules and gate files checked against a Comparison.

No I/O here: rules in, verdicts out (the gate file arrives as text). Thresholds use the metric
names of ``analysis/metrics.py``, like ``slo:`` in a scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import yaml

from infbench.analysis.metrics import COMPARE_METRICS, MetricSpec
from infbench.analysis.slo import parse_threshold
from infbench.compare.comparison import Comparison, MetricComparison
from infbench.errors import UsageError
from infbench.units import parse_duration, parse_percent

__all__ = [
    "CompareRule",
    "CompareRuleResult",
    "GateConfig",
    "check_comparison",
    "parse_gate_file",
    "parse_rule",
]


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
            threshold = parse_threshold("error_rate", raw)
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
        if parse_percent(raw) is None:
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
    if (percent := parse_percent(value)) is not None:
        fraction = percent
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
