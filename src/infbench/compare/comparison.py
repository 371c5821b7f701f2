"""Two result directories -> Comparison (DESIGN §10).

Per phase (matched by name) and metric: base, candidate, change, a 95 % confidence interval of
the change, a p-value and a verdict. With at least ``min_runs`` repetitions on both sides the
test is Mann-Whitney U across the runs' figures; otherwise a seeded block bootstrap over the
1-second interval histograms of ``latency.hlog``. A change counts (better / worse) only when it
is significant (p < alpha and the interval excludes 0) and larger than the noise threshold:
significant is not the same as large. Warnings that qualify the result travel inside it.
The method is described for users in docs/statistics.md.
"""

from __future__ import annotations

import statistics
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from infbench.analysis.metrics import (
    COMPARE_METRICS,
    SERVER_METRICS,
    TURN_METRICS,
    MetricSpec,
    metric_value,
    server_value,
)
from infbench.analysis.slo import goodput_latency_ms, parse_slo
from infbench.analysis.stats import (
    FloatArray,
    SecondsBootstrap,
    bootstrap_interval,
    bootstrap_p_value,
    mann_whitney_p,
    relative_diffs,
    shift_interval,
)
from infbench.compare import warnings as warn
from infbench.compare.turns import turn_tests
from infbench.compare.warnings import CompareWarning
from infbench.errors import InfbenchError
from infbench.results.hlog import PhaseSeconds, fold_tail, pool, read_interval_log
from infbench.results.rundir import RunResult, load_run

__all__ = [
    "CompareSettings",
    "CompareWarning",
    "Comparison",
    "MetricComparison",
    "Side",
    "compare",
    "compare_sides",
    "load_side",
    "with_seconds",
]

Verdict = Literal["better", "worse", "~"]
Method = Literal["mann-whitney", "bootstrap", "none"]

# Percentile metrics: (histogram in latency.hlog, percentile).
_PERCENTILES: dict[str, tuple[str, float]] = {
    "p50": ("latency", 50.0),
    "p90": ("latency", 90.0),
    "p99": ("latency", 99.0),
    "p999": ("latency", 99.9),
    "service_p50": ("service", 50.0),
    "service_p99": ("service", 99.0),
    "ttft_p50": ("ttft", 50.0),
    "ttft_p99": ("ttft", 99.0),
    "tpot_p50": ("tpot", 50.0),
    "tpot_p99": ("tpot", 99.0),
    "itl_p50": ("itl", 50.0),
    "itl_p99": ("itl", 99.0),
}
# Figures of streamed phases only (DESIGN §5b): compared when both runs have them.
_STREAM_METRICS = frozenset(
    {"ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p50", "itl_p99", "output_tps"}
)
_MWU: Method = "mann-whitney"
PHASE_METRICS = tuple(
    name for name in COMPARE_METRICS if name not in SERVER_METRICS and name not in TURN_METRICS
)


@dataclass(frozen=True)
class CompareSettings:
    """The method's knobs; the defaults are what docs/statistics.md describes."""

    alpha: float = 0.05
    noise: float = 0.05  # relative, for latencies and rates
    error_rate_noise: float = 0.001  # absolute: 0.1 percentage point
    resamples: int = 2000
    seed: int = 1
    min_runs: int = 4
    min_seconds: int = 5
    min_tail: int = 10  # values beyond a percentile needed to test it: n·(1 − q) ≥ min_tail


@dataclass(frozen=True)
class MetricComparison:
    """One phase and metric. ``change`` is relative (0.1 = +10 %) except for absolute metrics
    (error_rate: a difference of fractions); ``ci`` is in the same terms. ``n`` counts runs
    (Mann-Whitney) or seconds (bootstrap) per side."""

    phase: str
    metric: str
    base: float | None
    cand: float | None
    change: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    n: tuple[int, int]
    method: Method
    verdict: Verdict
    significant: bool

    @property
    def spec(self) -> MetricSpec:
        return COMPARE_METRICS[self.metric]

    @property
    def testable(self) -> bool:
        """False when the data were too few to test: only the point estimate is known."""
        return self.p_value is not None


@dataclass(frozen=True)
class Comparison:
    """What ``infbench compare`` found; every view (table, markdown, JSON, JUnit, HTML) and
    the gate read this value and nothing else."""

    base: str
    candidate: str
    method: Literal["mann-whitney", "bootstrap"]
    repetitions: tuple[int, int]
    settings: CompareSettings
    phases: tuple[str, ...]
    rows: tuple[MetricComparison, ...]
    warnings: tuple[CompareWarning, ...]

    def row(self, phase: str, metric: str) -> MetricComparison | None:
        return next((r for r in self.rows if r.phase == phase and r.metric == metric), None)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its run.json, its repetitions (itself for a plain run) and,
    for the bootstrap, each phase's seconds pooled over the repetitions."""

    run: RunResult
    repetitions: tuple[RunResult, ...]
    seconds: Mapping[str, PhaseSeconds] = field(default_factory=dict)


def load_side(path: Path) -> Side:
    """A result directory, with the ``repetitions`` sub-directories of ``run --repeat``."""
    run = load_run(path)  # also checks the phases[] contract and the repetitions' names
    names = run.record.repetitions
    if names is None:
        return Side(run, (run,))
    return Side(run, tuple(load_run(path / name) for name in names))


def _phase_seconds(run: RunResult) -> dict[str, PhaseSeconds]:
    """A run's latency.hlog by phase, each phase cut at the end of its window."""
    log = read_interval_log(run.path / "latency.hlog")
    for name, (_, end) in (run.record.timings.phase_windows_s or {}).items():
        if name in log:
            log[name] = fold_tail(log[name], float(end))
    return log


def with_seconds(side: Side) -> Side:
    """Read every repetition's latency.hlog (needed by the bootstrap only)."""
    logs = [_phase_seconds(rep) for rep in side.repetitions]
    names = {name for log in logs for name in log}
    return replace(side, seconds={n: pool([log[n] for log in logs if n in log]) for n in names})


def compare(base: Path, candidate: Path, settings: CompareSettings | None = None) -> Comparison:
    settings = settings or CompareSettings()
    sides = load_side(base), load_side(candidate)
    if min(len(side.repetitions) for side in sides) < settings.min_runs:
        sides = with_seconds(sides[0]), with_seconds(sides[1])
    return compare_sides(*sides, settings)


def compare_sides(base: Side, cand: Side, settings: CompareSettings) -> Comparison:
    """The comparison of two loaded sides; pure computation, seeded, no I/O."""
    reps = (len(base.repetitions), len(cand.repetitions))
    by_runs = min(reps) >= settings.min_runs
    warnings = warn.run_warnings(base.repetitions, cand.repetitions, settings.min_runs)
    warnings += warn.environment(base.run, cand.run)
    base_names = [p.name for p in base.run.phases]
    cand_names = [p.name for p in cand.run.phases]
    shared = tuple(name for name in base_names if name in cand_names)
    warnings += warn.one_sided(base_names, cand_names)
    rows: list[MetricComparison] = []
    for phase in shared:
        compare_phase = _phase_by_runs if by_runs else _phase_by_seconds
        phase_rows, phase_warnings = compare_phase(phase, base, cand, settings)
        rows += phase_rows
        knobs = (settings.seed, settings.resamples, settings.min_tail)
        turns = turn_tests(phase, base.run, cand.run, knobs)  # compare/turns.py: TTFT by turn
        rows += [_row(phase, *test, settings) for test in turns]
        warnings += phase_warnings
    if not by_runs and any(r.metric in SERVER_METRICS for r in rows):
        warnings += warn.server_untested(settings.min_runs)
    return Comparison(
        base=str(base.run.path),
        candidate=str(cand.run.path),
        method="mann-whitney" if by_runs else "bootstrap",
        repetitions=reps,
        settings=settings,
        phases=shared,
        rows=tuple(rows),
        warnings=tuple(warnings),
    )


# --- figures, changes and verdicts ----------------------------------------------------------


def _value(run: RunResult, phase: str, metric: str) -> float | None:
    if metric in SERVER_METRICS:
        return server_value(run.record, phase, metric)
    entry = run.record.phase(phase)
    return metric_value(entry, metric) if entry is not None else None


def _point(side: Side, phase: str, metric: str) -> float | None:
    """A side's figure: its run.json's, else (server metrics of ``run --repeat``, which the
    aggregate does not merge) the median over its repetitions."""
    value = _value(side.run, phase, metric)
    if value is not None or len(side.repetitions) == 1:
        return value
    values = [v for r in side.repetitions if (v := _value(r, phase, metric)) is not None]
    return statistics.median(values) if values else None


def _metrics(phase: str, base: Side, cand: Side) -> list[str]:
    """Every phase metric (a streamed one when both sides streamed), and the server metrics
    that both sides measured."""

    def both(name: str) -> bool:
        return _point(base, phase, name) is not None and _point(cand, phase, name) is not None

    phase_metrics = [m for m in PHASE_METRICS if m not in _STREAM_METRICS or both(m)]
    return [*phase_metrics, *(name for name in SERVER_METRICS if both(name))]


def _change(spec: MetricSpec, base: float | None, cand: float | None) -> float | None:
    if base is None or cand is None:
        return None
    if spec.absolute:
        return cand - base
    return cand / base - 1.0 if base else None


def _verdict(
    spec: MetricSpec,
    change: float | None,
    ci: tuple[float, float] | None,
    p: float | None,
    settings: CompareSettings,
) -> tuple[Verdict, bool]:
    """better / worse only when significant AND beyond the noise threshold; else ``~``."""
    if change is None or ci is None or p is None:
        return "~", False
    significant = p < settings.alpha and (ci[0] > 0 or ci[1] < 0)
    floor = settings.error_rate_noise if spec.absolute else settings.noise
    if not significant or abs(change) <= floor or (change > 0) != (ci[0] > 0):
        return "~", significant
    worse = change < 0 if spec.higher_is_better else change > 0
    return ("worse" if worse else "better"), True


def _row(
    phase: str,
    metric: str,
    values: tuple[float | None, float | None],
    n: tuple[int, int],
    test: tuple[tuple[float, float], float, Method] | None,
    settings: CompareSettings,
) -> MetricComparison:
    spec = COMPARE_METRICS[metric]
    change = _change(spec, *values)
    ci: tuple[float, float] | None = None
    p: float | None = None
    method: Method = "none"
    if test is not None and change is not None:
        ci, p, method = test
    verdict, significant = _verdict(spec, change, ci, p, settings)
    return MetricComparison(phase, metric, *values, change, ci, p, n, method, verdict, significant)


# --- Mann-Whitney across repetitions ---------------------------------------------------------


def _runs_interval(
    spec: MetricSpec, base: list[float], cand: list[float], base_center: float
) -> tuple[float, float]:
    """Hodges-Lehmann/Moses interval of the shift; for relative metrics on the log scale,
    where a shift is a ratio, so the interval reads directly as a relative change."""
    if spec.absolute:
        return shift_interval(base, cand)
    if min(base + cand) > 0:
        lo, hi = shift_interval(list(np.log(base)), list(np.log(cand)))
        return float(np.expm1(lo)), float(np.expm1(hi))
    lo, hi = shift_interval(base, cand)
    return lo / base_center, hi / base_center


def _phase_by_runs(
    phase: str, base: Side, cand: Side, settings: CompareSettings
) -> tuple[list[MetricComparison], list[CompareWarning]]:
    rows, short = [], []
    for metric in _metrics(phase, base, cand):
        b = [v for r in base.repetitions if (v := _value(r, phase, metric)) is not None]
        c = [v for r in cand.repetitions if (v := _value(r, phase, metric)) is not None]
        centers = (statistics.median(b) if b else None, statistics.median(c) if c else None)
        spec, test = COMPARE_METRICS[metric], None
        if min(len(b), len(c)) < settings.min_runs:
            short.append(metric)
        elif centers[0] is not None and _change(spec, *centers) is not None:
            test = (_runs_interval(spec, b, c, centers[0]), mann_whitney_p(b, c), _MWU)
        rows.append(_row(phase, metric, centers, (len(b), len(c)), test, settings))
    return rows, warn.few_runs(phase, short, settings.min_runs)


# --- block bootstrap over seconds ------------------------------------------------------------


def _goodput_limit_us(run: RunResult) -> float | None:
    """The latency bound a request must meet to count toward goodput (the scenario's SLO)."""
    slo = run.record.scenario.slo
    if slo is None:
        return None
    try:
        bound_ms = goodput_latency_ms(parse_slo(slo))
    except InfbenchError:
        return None
    return bound_ms * 1000.0 if bound_ms is not None else None


def _resampled(metric: str, boot: SecondsBootstrap, side: Side, phase: str) -> FloatArray | None:
    """The metric in each resample of one side; None for figures without per-second data."""
    if metric in _PERCENTILES:
        return boot.percentile(*_PERCENTILES[metric])
    if metric == "mean":
        return boot.mean("latency")
    if metric == "error_rate":
        failed = boot.count("failed")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(failed / (failed + boot.count("latency")), dtype=np.float64)
    point = _value(side.run, phase, metric)
    if metric not in ("achieved_rps", "goodput_rps", "output_tps") or point is None:
        return None
    # A rate measured once over the phase scales with the resample's share of its requests
    # (tokens with that of its successes: their count per answer is not in the interval log).
    if metric == "achieved_rps":
        return point * boot.rate_ratio(["latency", "failed"])
    if metric == "output_tps":
        return point * boot.rate_ratio(["latency"])
    return point * boot.rate_ratio(["latency"], _goodput_limit_us(side.run))


def _samples_short(
    metric: str, boots: tuple[SecondsBootstrap, SecondsBootstrap], min_tail: int
) -> bool:
    """A percentile is testable only with ``min_tail`` values beyond it on each side, an error
    rate only with ``min_tail`` errors in all: resampling a handful of rare values gives a
    distribution far narrower than the truth."""
    if metric == "error_rate":
        return sum(b.phase.metric("failed").total for b in boots) < min_tail
    histogram, q = _PERCENTILES.get(metric, ("latency", 50.0) if metric == "mean" else ("", 0))
    if not histogram:
        return False
    fewest = min(b.phase.metric(histogram).total for b in boots)
    return fewest * (1 - q / 100) < min_tail


def _bootstrap_test(
    spec: MetricSpec, stats: tuple[FloatArray, FloatArray], n_blocks: int, resamples: int
) -> tuple[tuple[float, float], float, Method] | None:
    diffs = stats[1] - stats[0] if spec.absolute else relative_diffs(*stats)
    finite = diffs[np.isfinite(diffs)]
    if len(finite) < 0.99 * resamples:
        return None  # too many empty resamples to trust the tails
    return bootstrap_interval(finite, n_blocks), bootstrap_p_value(finite, n_blocks), "bootstrap"


def _seconds_test(
    metric: str,
    boots: tuple[SecondsBootstrap, SecondsBootstrap],
    sides: tuple[Side, Side],
    phase: str,
    resamples: int,
) -> tuple[tuple[float, float], float, Method] | None:
    base, cand = (_resampled(metric, b, s, phase) for b, s in zip(boots, sides, strict=True))
    if base is None or cand is None:
        return None
    blocks = min(boot.n_blocks for boot in boots)
    return _bootstrap_test(COMPARE_METRICS[metric], (base, cand), blocks, resamples)


def _phase_by_seconds(
    phase: str, base: Side, cand: Side, settings: CompareSettings
) -> tuple[list[MetricComparison], list[CompareWarning]]:
    secs_b, secs_c = base.seconds.get(phase), cand.seconds.get(phase)
    n = (len(secs_b.seconds) if secs_b else 0, len(secs_c.seconds) if secs_c else 0)
    boots = None
    if secs_b is not None and secs_c is not None and min(n) >= settings.min_seconds:
        boots = (_bootstrap(secs_b, settings, phase, 0), _bootstrap(secs_c, settings, phase, 1))
    rows, short = [], []
    for metric in _metrics(phase, base, cand):
        test = None
        if boots is not None and _samples_short(metric, boots, settings.min_tail):
            if metric != "error_rate":  # few errors is good news, not worth a warning
                short.append(metric)
        elif boots is not None:
            test = _seconds_test(metric, boots, (base, cand), phase, settings.resamples)
        values = (_point(base, phase, metric), _point(cand, phase, metric))
        rows.append(_row(phase, metric, values, n, test, settings))
    return rows, warn.seconds_warnings(phase, n, short, settings.min_seconds, settings.min_tail)


def _bootstrap(
    secs: PhaseSeconds, settings: CompareSettings, phase: str, side: int
) -> SecondsBootstrap:
    # Seeded by phase name and side, so adding a phase or reordering leaves the others alone.
    rng = np.random.default_rng([settings.seed, zlib.crc32(phase.encode()), side])
    return SecondsBootstrap(secs, settings.resamples, rng)
