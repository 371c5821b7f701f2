"""The pure parts of ``infbench sweep``: rate lists, SLO strings, grids, and the capacity search.

No I/O and no clock here: the search takes a ``probe`` (rate -> verdict) and a ``may_continue``
callback, so its bracketing and bisection are tested on fake probes, deterministically.

How a level's verdict becomes confident: each SLO metric gets a 95 % interval from a block
bootstrap over the level's 1-second histograms (the resampling ``compare`` uses, pooled over
the level's runs), widened for error rates by the exact binomial (Clopper-Pearson) interval,
since a bootstrap of "0 errors in 60 requests" would claim an error rate of exactly 0. The
verdict is confident when every interval lies on one side of its threshold; otherwise the
level is run again and the runs pooled, until it is or the level's run limit is reached.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from infbench.analysis.metrics import HIGHER_IS_BETTER, METRIC_PATHS
from infbench.analysis.slo import Rule, parse_slo
from infbench.analysis.stats import SecondsBootstrap, bootstrap_interval
from infbench.errors import InfbenchError, UsageError
from infbench.recorder.percentile import bucket_percentiles
from infbench.results.hlog import PhaseSeconds
from infbench.units import parse_rate

__all__ = [
    "MAX_LEVELS",
    "Estimate",
    "GridPoint",
    "LevelVerdict",
    "Probe",
    "SearchResult",
    "SearchSettings",
    "Step",
    "estimate_metric",
    "expand_grid",
    "judge",
    "parse_rates",
    "parse_slo_text",
    "search_max",
]

MAX_LEVELS = 100
_PERCENTILE_METRICS = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
_SLO_ITEM = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>|=|:)\s*(.+?)\s*$")
_SLO_SYNTAX = (
    "--slo takes METRIC<=VALUE items separated by commas, e.g. 'p99<=200ms,error_rate<=1%'"
)


# --- rates ------------------------------------------------------------------------------------


def _rate(text: str, where: str) -> float:
    try:
        rate = parse_rate(text.strip())
    except ValueError as exc:
        raise UsageError(f"--rates {where}: {exc}, got {text.strip()!r}") from None
    if rate <= 0:
        raise UsageError(f"--rates {where}: a rate must be above 0, got {text.strip()!r}")
    return rate


def parse_rates(text: str) -> list[float]:
    """``5,10,20`` (a list) or ``5..80x2`` (geometric: 5, 10, 20, 40, 80; the end is kept only
    when the series reaches it). Units as in scenarios: ``3000/m`` is 50 per second."""
    if ".." in text:
        start_text, _, rest = text.partition("..")
        end_text, sep, factor_text = rest.rpartition("x")
        if not sep:
            raise UsageError(f"--rates {text!r}: a range needs a factor, e.g. 5..80x2")
        start, end = _rate(start_text, text), _rate(end_text, text)
        try:
            factor = float(factor_text)
        except ValueError:
            raise UsageError(f"--rates {text!r}: the factor must be a number, e.g. x2") from None
        if not factor > 1 or not math.isfinite(factor):
            raise UsageError(f"--rates {text!r}: the factor must be above 1, got {factor_text!r}")
        if end < start:
            raise UsageError(f"--rates {text!r}: the range must rise (start ≤ end)")
        count = math.floor(math.log(end / start) / math.log(factor) + 1e-9) + 1
        if count > MAX_LEVELS:
            raise UsageError(f"--rates {text!r}: {count} levels; at most {MAX_LEVELS}")
        return [start * factor**k for k in range(count)]
    rates = [_rate(part, repr(text)) for part in text.split(",") if part.strip()]
    if not rates:
        raise UsageError("--rates: give rates such as 5,10,20 or a range such as 5..80x2")
    if len(rates) > MAX_LEVELS:
        raise UsageError(f"--rates: {len(rates)} levels; at most {MAX_LEVELS}")
    return rates


# --- SLO strings ------------------------------------------------------------------------------


def parse_slo_text(text: str) -> list[Rule]:
    """``p99<=200ms,error_rate<=1%`` -> rules, with the thresholds of a scenario's ``slo:``.

    The operator must agree with the metric's direction (latencies and error rates are bounded
    above, rates below), so a slip such as ``p99>=200ms`` is refused rather than misread.
    """
    rules: list[Rule] = []
    for item in (part for part in text.split(",") if part.strip()):
        match = _SLO_ITEM.match(item)
        if match is None:
            raise UsageError(f"--slo {item.strip()!r}: expected METRIC<=VALUE", hint=_SLO_SYNTAX)
        metric, op, value = match.groups()
        if metric not in METRIC_PATHS:
            choices = ", ".join(METRIC_PATHS)
            raise UsageError(f"--slo {item.strip()!r}: unknown metric {metric!r}; choose {choices}")
        wanted = ">=" if metric in HIGHER_IS_BETTER else "<="
        if op not in (wanted, wanted[0], "=", ":"):
            raise UsageError(
                f"--slo {item.strip()!r}: {metric} is bounded "
                f"{'below' if wanted == '>=' else 'above'}; write {metric}{wanted}{value}"
            )
        try:
            rules += parse_slo({metric: value})
        except InfbenchError as exc:
            raise UsageError(f"--slo {item.strip()!r}: {exc.message.split(': ', 1)[-1]}") from None
    if not rules:
        raise UsageError("--slo: no rule given", hint=_SLO_SYNTAX)
    return rules


# --- grids ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    """One combination of settings: ``(key, value)`` pairs in the order the --grid flags came."""

    settings: tuple[tuple[str, str], ...]

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(scenario as is)"


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes, so ``[1,2],[3]`` is two YAML values."""
    values, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    return values


def expand_grid(specs: Sequence[str]) -> list[GridPoint]:
    """``['target.workers=1,2', 'x=a,b']`` -> the cartesian product, first key slowest."""
    axes: list[list[tuple[str, str]]] = []
    seen: set[str] = set()
    for spec in specs:
        key, sep, values_text = spec.partition("=")
        key = key.strip()
        values = _split_values(values_text) if sep else []
        if not key or not values or any(not v for v in values):
            raise UsageError(
                f"--grid {spec!r}: expected KEY=V1,V2,..., e.g. --grid 'target.workers=1,2'"
            )
        if key in seen:
            raise UsageError(f"--grid {spec!r}: {key} is already a grid axis; list its values once")
        seen.add(key)
        axes.append([(key, value) for value in values])
    points = [GridPoint(tuple(combo)) for combo in itertools.product(*axes)]
    if len(points) > MAX_LEVELS:
        raise UsageError(f"--grid: {len(points)} points; at most {MAX_LEVELS}")
    return points


# --- one level's verdict ------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A metric at one level: point value and 95 % interval (None where it cannot be had)."""

    metric: str
    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class LevelVerdict:
    passed: bool
    confident: bool
    estimates: tuple[Estimate, ...] = ()
    reason: str = ""


def _total_percentile(phase: PhaseSeconds, q: float) -> float | None:
    """The percentile of all the level's seconds together, by HdrHistogram's rule (µs)."""
    data = phase.metric("latency")
    value = float(
        bucket_percentiles(data.counts.sum(axis=0), data.grid.lows, data.grid.highs, q)[0]
    )
    return None if math.isnan(value) else value


def _binomial_interval(failed: int, total: int) -> tuple[float, float]:
    """Clopper-Pearson 95 % interval of a proportion."""
    from scipy.stats import beta

    low = 0.0 if failed == 0 else float(beta.ppf(0.025, failed, total - failed + 1))
    high = 1.0 if failed == total else float(beta.ppf(0.975, failed + 1, total - failed))
    return low, high


def estimate_metric(
    metric: str, phase: PhaseSeconds, point: float | None, rng: np.random.Generator
) -> Estimate:
    """Point value and interval of an SLO metric over a level's pooled seconds.

    ``point`` is the figure from run.json (used for metrics without per-second data, such as
    throughput, which then get no interval). Latencies are in ms like the summaries.
    """
    seconds = len(phase.seconds)
    boot = SecondsBootstrap(phase, 2000, rng) if seconds >= 2 else None
    if metric in _PERCENTILE_METRICS:
        q = _PERCENTILE_METRICS[metric]
        value = _total_percentile(phase, q)
        total = phase.metric("latency").total
        if value is None or boot is None or boot.n_blocks < 2 or total * (1 - q / 100) < 10:
            return Estimate(metric, None if value is None else value / 1000)  # too few to tell
        low, high = bootstrap_interval(boot.percentile("latency", q), boot.n_blocks)
        return Estimate(metric, value / 1000, low / 1000, high / 1000)
    if metric == "mean" and point is not None and boot is not None and boot.n_blocks >= 2:
        means = boot.mean("latency")  # µs, HdrHistogram's bucket midpoints
        low, high = bootstrap_interval(means[np.isfinite(means)], boot.n_blocks)
        return Estimate(metric, point, low / 1000, high / 1000)
    if metric == "error_rate":
        failed, ok = phase.metric("failed").total, phase.metric("latency").total
        if failed + ok == 0:
            return Estimate(metric, None)
        low, high = _binomial_interval(failed, failed + ok)
        if boot is not None and boot.n_blocks >= 2:
            f, o = boot.count("failed"), boot.count("latency")
            with np.errstate(divide="ignore", invalid="ignore"):
                rates = f / (f + o)
            lo_b, hi_b = bootstrap_interval(rates[np.isfinite(rates)], boot.n_blocks)
            low, high = min(low, lo_b), max(high, hi_b)
        return Estimate(metric, failed / (failed + ok), low, high)
    return Estimate(metric, point)


def judge(rules: Sequence[Rule], estimates: Sequence[Estimate]) -> LevelVerdict:
    """Pass when every rule holds; confident when every interval clears its threshold.

    A rule that is clearly broken decides the level (confidently) whatever the others say.
    Without an interval a rule decides on its point value but leaves the level uncertain,
    unless it is a metric that never has one here (throughput, max), which is taken as measured.
    """
    by_metric = {e.metric: e for e in estimates}
    passed, confident, reasons = True, True, []
    for rule in rules:
        est = by_metric.get(rule.metric, Estimate(rule.metric, None))
        if est.value is None:
            return LevelVerdict(False, True, tuple(estimates), f"{rule.metric}: no data")
        sign = -1.0 if rule.higher_is_better else 1.0  # compare as "lower is better"
        ok = sign * est.value <= sign * rule.threshold
        if est.low is None or est.high is None:
            sure = rule.metric not in (*_PERCENTILE_METRICS, "error_rate", "mean")
        else:
            bounds = sorted((sign * est.low, sign * est.high))
            sure = bounds[1] <= sign * rule.threshold or bounds[0] > sign * rule.threshold
        if not ok and sure:
            return LevelVerdict(False, True, tuple(estimates), f"{rule.metric} breaks the SLO")
        passed, confident = passed and ok, confident and sure
        if not sure:
            reasons.append(f"{rule.metric} too close to {rule.text} to tell")
    return LevelVerdict(passed, confident, tuple(estimates), "; ".join(reasons))


# --- the capacity search ------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings:
    start: float
    precision: float = 0.10  # stop when the first failing rate is within 10 % of the last pass
    max_rate: float | None = None  # doubling stops here (default start·2^12)
    min_rate: float | None = None  # halving stops here (default start/2^12)


@dataclass(frozen=True)
class Step:
    rate: float
    verdict: LevelVerdict
    stage: Literal["bracket", "bisect"]


@dataclass
class SearchResult:
    """Where the capacity lies: at or above ``last_pass`` and below ``first_fail``."""

    steps: list[Step] = field(default_factory=list)
    last_pass: float | None = None
    first_fail: float | None = None
    stopped: str = ""  # why the search ended

    @property
    def confident(self) -> bool:
        """Both bounding levels were judged with confidence."""
        bounds = {self.last_pass, self.first_fail} - {None}
        return bool(bounds) and all(s.verdict.confident for s in self.steps if s.rate in bounds)


Probe = Callable[[float], LevelVerdict]


def _record(result: SearchResult, rate: float, verdict: LevelVerdict, stage: str) -> None:
    result.steps.append(Step(rate, verdict, "bracket" if stage == "bracket" else "bisect"))
    if verdict.passed:
        result.last_pass = max(rate, result.last_pass or rate)
    else:
        result.first_fail = min(rate, result.first_fail or rate)


def search_max(
    probe: Probe, settings: SearchSettings, may_continue: Callable[[], bool]
) -> SearchResult:
    """Bracket (double from ``start`` until a level fails, or halve until one passes), then
    bisect on the log scale until the bracket is within ``precision``.

    Assumes that a higher rate never meets the SLO better than a lower one; a noisy level that
    breaks this only narrows the bracket around it. ``may_continue`` (the budget) is asked
    before every level after the first.
    """
    result = SearchResult()
    top = settings.max_rate or settings.start * 2**12
    bottom = settings.min_rate or settings.start / 2**12
    rate = settings.start
    _record(result, rate, probe(rate), "bracket")
    while result.last_pass is None or result.first_fail is None:
        rate = rate * 2 if result.first_fail is None else rate / 2
        if rate > top * (1 + 1e-9) or rate < bottom * (1 - 1e-9):
            result.stopped = "reached --max-rate" if rate > top else "no tested rate met the SLO"
            return result
        if not may_continue():
            result.stopped = "budget spent before the capacity was bracketed"
            return result
        _record(result, rate, probe(rate), "bracket")
    while result.first_fail / result.last_pass > 1 + settings.precision:
        if not may_continue():
            result.stopped = "budget spent"
            return result
        rate = math.sqrt(result.last_pass * result.first_fail)
        _record(result, rate, probe(rate), "bisect")
    result.stopped = f"bracket within {settings.precision:.0%}"
    return result
