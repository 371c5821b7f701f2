"""The comparison's statistics as maths: HDR-exact percentiles, the interval log read back,
Mann-Whitney and its interval, the bootstrap's calibration on seeded synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from scipy.stats import mannwhitneyu

from infbench.analysis.stats import (
    SecondsBootstrap,
    _u_cdf,
    block_length,
    bootstrap_interval,
    bootstrap_p_value,
    cumulative_by_bucket,
    mann_whitney_p,
    shift_interval,
    weighted_percentiles,
)
from infbench.compare.comparison import CompareSettings, Comparison, Side, compare_sides
from infbench.errors import ResultFormatError
from infbench.recorder.hdr import new_histogram
from infbench.results.hlog import (
    BucketGrid,
    IntervalLogWriter,
    MetricSeconds,
    PhaseSeconds,
    bucket_layout,
    fold_tail,
    pool,
    read_interval_log,
)
from infbench.results.percentile import value_at_percentile
from infbench.results.records import RunRecord
from infbench.results.rundir import RunResult

HIGHEST_US = 25_000_000
LAYOUT = bucket_layout(1, HIGHEST_US, 3)


# --- synthetic sides, built in memory (no files: hundreds of trials stay fast) -------------


def metric_seconds(values_by_second: list[np.ndarray]) -> MetricSeconds:
    rows = []
    for values in values_by_second:
        index = np.searchsorted(LAYOUT.lows, values.astype(np.int64), side="right") - 1
        rows.append(np.bincount(index, minlength=len(LAYOUT)))
    dense = np.vstack(rows)
    used = np.flatnonzero(dense.sum(axis=0))
    grid = BucketGrid(LAYOUT.lows[used], LAYOUT.highs[used], LAYOUT.mids[used])
    return MetricSeconds(grid, dense[:, used].astype(np.int64))


def summary_ms(metric: MetricSeconds) -> dict[str, float]:
    """What run.json would hold, computed the HdrHistogram way from the same counts."""
    cumulative = cumulative_by_bucket(metric.counts.astype(np.float64))
    ones = np.ones((1, metric.counts.shape[0]))
    out = {
        key: float(weighted_percentiles(cumulative, metric.grid, ones, q)[0]) / 1000
        for key, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9))
    }
    out["mean"] = float(metric.counts.sum(axis=0) @ metric.grid.mids) / metric.total / 1000
    return out


def synthetic_run(
    rng: np.random.Generator, arrivals: np.ndarray, median_ms: float, error_rate: float = 0.001
) -> tuple[dict[str, object], PhaseSeconds]:
    latency, service, failed = [], [], []
    for n in arrivals:
        values = median_ms * 1000 * np.exp(0.25 * rng.standard_normal(n))
        bad = rng.random(n) < error_rate
        latency.append(values[~bad])
        service.append(values[~bad] * 0.97)
        failed.append(values[bad])
    metrics = {
        "latency": metric_seconds(latency),
        "service": metric_seconds(service),
        "failed": metric_seconds(failed),
    }
    ok, errors, seconds = metrics["latency"].total, metrics["failed"].total, len(arrivals)
    phase = {
        "name": "steady",
        "latency_ms": summary_ms(metrics["latency"]),
        "service_ms": summary_ms(metrics["service"]),
        "achieved_rps": (ok + errors) / seconds,
        "goodput_rps": ok / seconds,
        "error_rate": errors / (ok + errors),
    }
    return phase, PhaseSeconds(np.arange(seconds), metrics)


def run_result(phase: dict[str, object], name: str) -> RunResult:
    data = {"format_version": 1, "status": "complete", "valid": True, "phases": [phase]}
    return RunResult(Path(name), RunRecord.from_json(data))


def bootstrap_side(rng: np.random.Generator, arrivals: np.ndarray, median_ms: float) -> Side:
    phase, seconds = synthetic_run(rng, arrivals, median_ms)
    run = run_result(phase, "run")
    return Side(run, (run,), {"steady": seconds})


def run_summary(rng: np.random.Generator, requests: int, median_ms: float) -> dict[str, object]:
    """A run.json phase straight from raw samples (all the Mann-Whitney path reads)."""
    latency = median_ms * np.exp(0.25 * rng.standard_normal(requests))
    errors = int(rng.binomial(requests, 0.001))
    keys = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}
    percentiles = {key: float(np.percentile(latency, q)) for key, q in keys.items()}
    summary = {**percentiles, "mean": float(latency.mean())}
    return {
        "name": "steady",
        "latency_ms": summary,
        "service_ms": {key: value * 0.97 for key, value in summary.items()},
        "achieved_rps": requests / 5,
        "goodput_rps": (requests - errors) / 5,
        "error_rate": errors / requests,
    }


def repeated_side(rng: np.random.Generator, runs: int, median_ms: float, noise: float) -> Side:
    """Repetitions of one schedule (500 requests in 5 s) whose latency level drifts from run to
    run by ``noise`` (the machine's state, as in life)."""
    reps = []
    for i in range(runs):
        level = median_ms * math.exp(noise * rng.standard_normal())
        reps.append(run_result(run_summary(rng, 500, level), f"run-{i + 1}"))
    return Side(reps[0], tuple(reps))


# --- HDR-exact percentiles and means ---------------------------------------------------------


def test_weighted_percentiles_match_hdrhistogram() -> None:
    rng = np.random.default_rng(3)
    values = (rng.lognormal(10, 1.2, 5000)).astype(np.int64)
    hist = new_histogram(HIGHEST_US)
    for value in values:
        hist.record_value(int(value))
    metric = metric_seconds([values[:2500], values[2500:]])
    cumulative = cumulative_by_bucket(metric.counts.astype(np.float64))
    for q in (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        got = weighted_percentiles(cumulative, metric.grid, np.ones((1, 2)), q)[0]
        assert got == value_at_percentile(hist, q)


def test_bootstrap_mean_matches_hdrhistogram() -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(100, 90_000, 3000)
    hist = new_histogram(HIGHEST_US)
    for value in values:
        hist.record_value(int(value))
    phase = PhaseSeconds(np.arange(3), {"latency": metric_seconds(np.array_split(values, 3))})
    boot = SecondsBootstrap(phase, 10, np.random.default_rng(0))
    boot.weights = np.ones((1, boot.n_blocks))  # the phase itself, not a resample
    assert boot.mean("latency")[0] == pytest.approx(hist.get_mean_value(), rel=1e-12)


def test_layout_matches_hdrhistogram_for_other_settings() -> None:
    grid = bucket_layout(1, 3_600_000_000, 2)
    hist = HdrHistogram(1, 3_600_000_000, 2)
    for index in np.random.default_rng(1).integers(0, hist.counts_len, 500):
        value = hist.get_value_from_index(int(index))
        assert grid.lows[index] == value
        assert grid.highs[index] == hist.get_highest_equivalent_value(value)


# --- the interval log read back ----------------------------------------------------------


def write_log(path: Path, lines: list[tuple[str, float, list[int]]]) -> None:
    with open(path, "w", encoding="ascii") as handle:
        writer = IntervalLogWriter(handle, 1_700_000_000.0)
        for tag, start, values in lines:
            hist = new_histogram(HIGHEST_US)
            for value in values:
                hist.record_value(value)
            writer.write(tag, start, 1.0, hist)


def test_interval_log_reads_back_per_second_counts(tmp_path: Path) -> None:
    log = tmp_path / "latency.hlog"
    write_log(
        log,
        [
            ("steady/latency", 1.0, [1000, 2000]),
            ("steady/failed", 1.0, [5000]),
            ("steady/latency", 3.0, [1000]),  # second 2 was quiet: it must read as zeros
            ("steady/latency", 3.0, [3000]),  # a second process's line for the same second
            ("ramp/latency", 4.0, [7000]),
        ],
    )
    phases = read_interval_log(log)
    steady = phases["steady"]
    assert list(steady.seconds) == [1, 2, 3]
    assert steady.metric("latency").counts.sum(axis=1).tolist() == [2, 0, 2]
    assert steady.metric("failed").total == 1
    assert steady.metric("service").total == 0  # never logged: empty, not an error
    assert list(phases["ramp"].seconds) == [4]


def test_tail_after_the_phase_folds_into_its_last_second(tmp_path: Path) -> None:
    log = tmp_path / "latency.hlog"
    write_log(log, [("p/latency", float(s), [1000] * n) for s, n in ((1, 5), (2, 5), (3, 1))])
    folded = fold_tail(read_interval_log(log)["p"], end_s=3.0)
    assert folded.seconds.tolist() == [1, 2]
    assert folded.metric("latency").counts.sum(axis=1).tolist() == [5, 6]


def test_pooled_repetitions_stack_their_seconds(tmp_path: Path) -> None:
    parts = []
    for i, values in enumerate(([1000, 1000], [90_000])):
        log = tmp_path / f"{i}.hlog"
        write_log(log, [("p/latency", 1.0, values), ("p/latency", 2.0, values)])
        parts.append(read_interval_log(log)["p"])
    pooled = pool(parts)
    assert pooled.metric("latency").counts.shape == (4, 2)
    assert pooled.metric("latency").total == 6


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("Tag=steady/latency,1.000,1.000,1.0,HISTFAAAAnotbase64!!\n", "does not decode"),
        ("Tag=steady/latency,1.000,1.0\n", "expected Tag=phase/metric"),
        ("Tag=steady/latency,abc,1.000,1.0,HISTFAAAAA==\n", "is not a number"),
    ],
)
def test_a_corrupt_line_names_the_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    log = tmp_path / "latency.hlog"
    write_log(log, [("steady/latency", 0.0, [1000])])
    with open(log, "a", encoding="ascii") as handle:
        handle.write(line)
    with pytest.raises(ResultFormatError, match=rf"latency\.hlog:7: .*{problem}"):
        read_interval_log(log)


def test_truncated_log_names_the_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "latency.hlog"
    write_log(log, [("steady/latency", 0.0, [1000, 2000, 3000])])
    text = log.read_text()
    log.write_text(text[: len(text) - 12])  # cut through the last histogram
    with pytest.raises(ResultFormatError, match=r"latency\.hlog:6: histogram does not decode"):
        read_interval_log(log)


# --- Mann-Whitney, its interval, the bootstrap's p-value -----------------------------------


def test_exact_u_distribution() -> None:
    cdf = _u_cdf(4, 4)
    assert cdf[0] == pytest.approx(1 / 70)
    assert cdf[1] == pytest.approx(2 / 70)
    assert cdf[-1] == pytest.approx(1.0)
    assert mann_whitney_p([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    assert mann_whitney_p([1.0] * 4, [1.0] * 4) == 1.0


def test_shift_interval_covers_the_shift_and_agrees_with_the_test() -> None:
    base, cand = [10.0, 11.0, 12.0, 13.0], [15.0, 16.0, 17.0, 18.0]
    lo, hi = shift_interval(base, cand)
    assert (lo, hi) == (2.0, 8.0)  # 4 + 4 runs: the extreme pairwise differences (97 %)
    rng = np.random.default_rng(5)
    base_many, cand_many = list(rng.normal(0, 1, 30)), list(rng.normal(0.3, 1, 30))
    lo, hi = shift_interval(base_many, cand_many)
    p = mannwhitneyu(cand_many, base_many).pvalue
    assert (lo > 0 or hi < 0) == (p < 0.05)


def test_bootstrap_p_value_and_interval_agree() -> None:
    rng = np.random.default_rng(2)
    for shift in np.linspace(-0.1, 0.1, 21):
        diffs = rng.normal(shift, 0.04, 2000)
        lo, hi = bootstrap_interval(diffs, n_blocks=30)
        p = bootstrap_p_value(diffs, n_blocks=30)
        if abs(p - 0.05) > 0.01:  # away from the boundary the two must agree
            assert (lo > 0 or hi < 0) == (p < 0.05), shift


def test_block_length_keeps_enough_blocks() -> None:
    assert [block_length(n) for n in (5, 19, 40, 60, 1000)] == [1, 1, 2, 3, 10]


# --- the method on seeded synthetic data -------------------------------------------------


def verdicts(comparison: Comparison) -> set[str]:
    return {row.verdict for row in comparison.rows}


def test_bootstrap_a_a_gives_no_worse_in_95_percent_of_trials() -> None:
    settings = CompareSettings(resamples=1000)
    trials, worse = 100, 0
    for trial in range(trials):
        rng = np.random.default_rng(1000 + trial)
        arrivals = rng.poisson(150, 12)  # the same schedule on both sides, as with one seed
        base, cand = bootstrap_side(rng, arrivals, 20.0), bootstrap_side(rng, arrivals, 20.0)
        comparison = compare_sides(base, cand, settings)
        assert comparison.method == "bootstrap"
        worse += "worse" in verdicts(comparison)
    assert worse <= 0.05 * trials


def test_bootstrap_detects_a_15_percent_latency_increase() -> None:
    rng = np.random.default_rng(7)
    arrivals = rng.poisson(150, 20)
    base, cand = bootstrap_side(rng, arrivals, 20.0), bootstrap_side(rng, arrivals, 23.0)
    comparison = compare_sides(base, cand, CompareSettings())
    for metric in ("p50", "p90", "p99", "mean", "service_p50"):
        row = comparison.row("steady", metric)
        assert row is not None and row.verdict == "worse", row
        assert row.change is not None and row.ci is not None
        assert row.ci[0] < 0.15 < row.ci[1] and row.ci[0] < row.change < row.ci[1]
    achieved = comparison.row("steady", "achieved_rps")
    assert achieved is not None and achieved.verdict == "~"


def test_mann_whitney_a_a_gives_no_worse_in_95_percent_of_trials() -> None:
    settings = CompareSettings()
    trials, worse = 200, 0
    for trial in range(trials):
        rng = np.random.default_rng(2000 + trial)
        runs = 4 + trial % 3  # 4, 5 and 6 runs a side
        base = repeated_side(rng, runs, 20.0, noise=0.03)
        cand = repeated_side(rng, runs, 20.0, noise=0.03)
        comparison = compare_sides(base, cand, settings)
        assert comparison.method == "mann-whitney"
        worse += "worse" in verdicts(comparison)
    assert worse <= 0.05 * trials


@pytest.mark.parametrize("runs", [4, 5, 8])
def test_mann_whitney_detects_a_15_percent_latency_increase(runs: int) -> None:
    detected = 0
    for trial in range(10):
        rng = np.random.default_rng(3000 + trial)
        base = repeated_side(rng, runs, 20.0, noise=0.03)
        cand = repeated_side(rng, runs, 23.0, noise=0.03)
        row = compare_sides(base, cand, CompareSettings()).row("steady", "p50")
        assert row is not None and row.method == "mann-whitney" and row.n == (runs, runs)
        detected += row.verdict == "worse"
    assert detected >= 9
