"""The one capacity search (``infbench sweep --find-max``, ``infbench calibrate``) and the
confident verdict a sweep level gets.

No I/O and no clock here: the search takes a ``probe`` (rate -> verdict) and a ``may_continue``
callback (the caller's budget), so its bracketing and bisection are tested on fake probes,
deterministically. The sweep probes a level with whole runs of the scenario and an SLO
verdict; calibration probes with a short run against the loopback sink, held or not.

How a sweep level's verdict becomes confident: each SLO metric gets a 95 % interval from a
block bootstrap over the level's 1-second histograms (the resampling ``compare`` uses, pooled
over the level's runs), widened for error rates by the exact binomial (Clopper-Pearson)
interval, since a bootstrap of "0 errors in 60 requests" would claim an error rate of exactly 0.
The verdict is confident when every interval lies on one side of its threshold; otherwise the
level is run again and the runs pooled, until it is or the level's run limit is reached.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from infbench.analysis.slo import Rule
from infbench.analysis.stats import SecondsBootstrap, bootstrap_interval
from infbench.results.hlog import PhaseSeconds
from infbench.results.percentile import bucket_percentiles

__all__ = [
    "Estimate",
    "LevelVerdict",
    "Probe",
    "SearchResult",
    "SearchSettings",
    "Step",
    "StopReason",
    "estimate_metric",
    "judge",
    "search_max",
]

_LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# SLO metric -> (its histogram in latency.hlog, percentile); `ttft` and `tpot` bound the p99
# as in `slo:` (analysis/metrics.py), read from the `<phase>/ttft` and `/tpot` tags.
_PERCENTILE_METRICS: dict[str, tuple[str, float]] = {
    **{name: ("latency", q) for name, q in _LATENCY_PERCENTILES.items()},
    **{f"{tag}_p{q:g}": (tag, q) for tag in ("ttft", "tpot", "itl") for q in (50.0, 99.0)},
    "ttft": ("ttft", 99.0),
    "tpot": ("tpot", 99.0),
}


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


def _total_percentile(phase: PhaseSeconds, tag: str, q: float) -> float | None:
    """The percentile of all the level's seconds together, by HdrHistogram's rule (µs)."""
    data = phase.metric(tag)
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
    throughput, which then get no interval). Latencies are in ms like the summaries; TTFT,
    TPOT and ITL percentiles come from their own histograms of a streamed phase.
    """
    seconds = len(phase.seconds)
    boot = SecondsBootstrap(phase, 2000, rng) if seconds >= 2 else None
    if metric in _PERCENTILE_METRICS:
        tag, q = _PERCENTILE_METRICS[metric]
        value = _total_percentile(phase, tag, q)
        total = phase.metric(tag).total
        if value is None or boot is None or boot.n_blocks < 2 or total * (1 - q / 100) < 10:
            return Estimate(metric, None if value is None else value / 1000)  # too few to tell
        low, high = bootstrap_interval(boot.percentile(tag, q), boot.n_blocks)
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

StopReason = Literal["precision", "budget", "ceiling", "floor", ""]


@dataclass(frozen=True)
class SearchSettings:
    """Where the search starts, how close it bisects, and how far it brackets.

    ``try_limits``: a doubling (halving) that would pass ``max_rate`` (``min_rate``) tries the
    limit itself first, and the search stops at the limit (calibration); otherwise it stops
    before passing it (the sweep's --max-rate caps the doubling). ``bisect``: the midpoint of
    the bracket on the log scale (a rate's effect is multiplicative) or the arithmetic one in
    whole requests per second (calibration's levels).
    """

    start: float
    precision: float = 0.10  # stop when the first failing rate is within 10 % of the last pass
    max_rate: float | None = None  # doubling stops here (default start·2^12)
    min_rate: float | None = None  # halving stops here (default start/2^12)
    try_limits: bool = False
    bisect: Literal["log", "whole"] = "log"


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
    # Why the search ended: the bracket is within the precision, the budget is spent, or every
    # rate passed up to the ceiling (failed down to the floor).
    stopped: StopReason = ""

    @property
    def bracketed(self) -> bool:
        return self.last_pass is not None and self.first_fail is not None

    @property
    def confident(self) -> bool:
        """Both bounding levels were judged with confidence."""
        bounds = {self.last_pass, self.first_fail} - {None}
        return bool(bounds) and all(s.verdict.confident for s in self.steps if s.rate in bounds)


Probe = Callable[[float], LevelVerdict]


def _record(result: SearchResult, rate: float, verdict: LevelVerdict) -> None:
    result.steps.append(Step(rate, verdict, "bisect" if result.bracketed else "bracket"))
    if verdict.passed:
        result.last_pass = max(rate, result.last_pass or rate)
    else:
        result.first_fail = min(rate, result.first_fail or rate)


def _bracket_step(result: SearchResult, settings: SearchSettings) -> float | StopReason:
    """Double from the last pass while nothing failed, halve from the first failure while
    nothing passed; ``ceiling`` or ``floor`` once that would leave [min_rate, max_rate]."""
    up = result.first_fail is None
    rate = result.last_pass if up else result.first_fail
    assert rate is not None
    top = settings.max_rate or settings.start * 2**12
    bottom = settings.min_rate or settings.start / 2**12
    following = rate * 2 if up else rate / 2
    if bottom * (1 - 1e-9) <= following <= top * (1 + 1e-9):
        return following
    limit = top if up else bottom
    if settings.try_limits and (rate < limit < following if up else following < limit < rate):
        return limit
    return "ceiling" if following > top else "floor"


def _next_rate(result: SearchResult, settings: SearchSettings) -> float | StopReason:
    """The next rate to probe, or why the search is over."""
    if result.last_pass is None or result.first_fail is None:
        return _bracket_step(result, settings)
    low, high = result.last_pass, result.first_fail
    if high / low - 1 <= settings.precision:
        return "precision"
    return math.sqrt(low * high) if settings.bisect == "log" else float(round((low + high) / 2))


def search_max(
    probe: Probe, settings: SearchSettings, may_continue: Callable[[], bool]
) -> SearchResult:
    """Bracket (double from ``start`` until a level fails, or halve until one passes), then
    bisect until the bracket is within ``precision``.

    Assumes that a higher rate never meets the SLO better than a lower one; a noisy level that
    breaks this only narrows the bracket around it. ``may_continue`` (the budget) is asked
    before every level after the first, once the search knows it has another level to run.
    """
    result = SearchResult()
    rate = settings.start
    while True:
        _record(result, rate, probe(rate))
        following = _next_rate(result, settings)
        if isinstance(following, str):
            result.stopped = following
            return result
        if not may_continue():
            result.stopped = "budget"
            return result
        rate = following
