"""Summaries computed from histograms and tallies: the numbers of the ``phases[]`` contract.

This is the home of the maths behind every table; formatters only read what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from infbench.recorder.tally import PhaseTally
from infbench.results.hlog import BucketGrid, PhaseSeconds
from infbench.results.percentile import percentile_ranks, values_at_percentiles
from infbench.results.records import LagPercentiles, Percentiles, PhaseSummary, TtfbPercentiles

__all__ = [
    "PERCENTILES",
    "PhaseInfo",
    "SecondsBootstrap",
    "block_length",
    "block_sums",
    "bootstrap_interval",
    "bootstrap_p_value",
    "cumulative_by_bucket",
    "histogram_summary",
    "lag_limit_ms",
    "lagging",
    "loop_lag_limit_ms",
    "mann_whitney_p",
    "phase_summary",
    "relative_diffs",
    "resample_weights",
    "shift_interval",
    "validity",
    "weighted_percentiles",
]

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
LAG_LIMIT_MS = 1.0
LAG_LIMIT_FRACTION_OF_P50 = 0.05
GENERATOR_CPU_LIMIT_PCT = 90.0
MIN_BLOCKS = 20  # blocks shorten to keep at least this many (see block_length)
EXACT_U_LIMIT = 50  # exact Mann-Whitney null distribution up to 50 runs a side, normal beyond
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PhaseInfo:
    name: str
    process: str
    duration_s: float
    scheduled: int


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 4)


def histogram_summary(hist: HdrHistogram, keys: tuple[str, ...] = ()) -> dict[str, float | None]:
    """Percentiles, max and mean in milliseconds; ``None`` everywhere for an empty histogram.

    Percentiles follow HdrHistogram's reference definition (``recorder.percentile``), all
    found in one pass over the counts.
    """
    wanted = keys or (*PERCENTILES, "max", "mean")
    if hist.get_total_count() == 0:
        return dict.fromkeys(wanted)
    quantiles = [key for key in wanted if key in PERCENTILES]
    found = values_at_percentiles(hist, [PERCENTILES[key] for key in quantiles])
    at = dict(zip(quantiles, found, strict=True))
    result: dict[str, float | None] = {}
    for key in wanted:
        if key == "max":
            result[key] = _ms(hist.get_max_value())
        elif key == "mean":
            result[key] = _ms(hist.get_mean_value())
        else:
            result[key] = _ms(at[key])
    return result


def _percentiles(hist: HdrHistogram) -> Percentiles:
    return Percentiles.from_json(histogram_summary(hist))


def _lag(hist: HdrHistogram) -> LagPercentiles:
    return LagPercentiles.from_json(histogram_summary(hist, ("p50", "p99", "max")))


def phase_summary(tally: PhaseTally, info: PhaseInfo) -> PhaseSummary:
    """One entry of run.json ``phases[]`` (DESIGN §8), plus error_rate and out_of_range."""
    duration = info.duration_s if info.duration_s > 0 else float("nan")
    failed = sum(tally.errors.values()) + tally.dropped
    attempted = tally.completed + tally.dropped
    hists = tally.histograms
    return PhaseSummary(
        name=info.name,
        process=info.process,
        duration_s=round(info.duration_s, 6),
        scheduled=info.scheduled,
        sent=tally.sent,
        completed=tally.completed,
        ok=tally.ok,
        dropped=tally.dropped,
        errors=dict(sorted(tally.errors.items())),
        error_rate=round(failed / attempted, 6) if attempted else 0.0,
        status_codes={str(code): n for code, n in sorted(tally.statuses.items())},
        offered_rps=round(info.scheduled / duration, 4) if info.scheduled else None,
        achieved_rps=round(tally.completed / duration, 4),
        goodput_rps=round(tally.ok_within_slo / duration, 4),
        latency_ms=_percentiles(hists["latency"]),
        service_ms=_percentiles(hists["service"]),
        lag_ms=_lag(hists["lag"]),
        ttfb_ms=TtfbPercentiles.from_json(histogram_summary(hists["ttfb"], ("p50", "p99"))),
        failed_ms=_lag(hists["failed"]),
        bytes_in=tally.bytes_in,
        bytes_out=tally.bytes_out,
        out_of_range=tally.out_of_range,
        loop_lag_ms=_loop_lag(hists.get("loop_lag")),
        **(_streamed(tally, duration) if tally.streamed else {}),
    )


def _loop_lag(hist: HdrHistogram | None) -> LagPercentiles | None:
    """None where no generator timed its loop (a run in virtual time, or from before)."""
    return _lag(hist) if hist is not None and hist.get_total_count() else None


def _token_gaps(hist: HdrHistogram | None) -> Percentiles | None:
    """ITL per token: only where the tokens of each chunk were known (per-chunk usage or a
    tokenizer), else absent."""
    return _percentiles(hist) if hist is not None and hist.get_total_count() else None


def _streamed(tally: PhaseTally, duration_s: float) -> dict[str, Any]:
    """A streamed phase's keys (DESIGN §5b, §8); tokens_source is the most common source."""
    hists = tally.histograms
    source = tally.token_sources.most_common(1)
    return {
        "ttft_ms": _percentiles(hists["ttft"]),
        "ttft_sent_ms": _percentiles(hists["ttft_sent"]),
        "tpot_ms": _percentiles(hists["tpot"]),
        "itl_ms": _percentiles(hists["itl"]),
        "itl_token_ms": _token_gaps(hists.get("itl_token")),
        "input_tokens": tally.input_tokens,
        "output_tokens": tally.output_tokens,
        "output_tps": round(tally.output_tokens / duration_s, 4),
        "peak_output_tps": float(tally.peak_output_tokens_per_s),
        "mean_concurrency": round(tally.service_ns / 1e9 / duration_s, 4),
        "tokens_source": source[0][0] if source else None,
        "token_mismatch_pct": token_mismatch_pct(tally),
    }


def token_mismatch_pct(tally: PhaseTally) -> float | None:
    """The token audit (DESIGN §5b): 100 × Σ|usage − tokenizer| / Σ usage over the ok answers
    counted both ways, per answer before summing so that over- and under-counts do not cancel;
    it bounds how far the phase's output_tokens, output_tps and TPOT may be off. None (absent)
    where no answer had both counts, never 0."""
    if not tally.audited_answers or not tally.audited_usage_tokens:
        return None
    return round(100.0 * tally.audited_token_difference / tally.audited_usage_tokens, 4)


def lag_limit_ms(phase: PhaseSummary) -> float:
    """The send lag p99 a valid phase stays under: 1 ms, or 5 % of its latency p50."""
    return max(LAG_LIMIT_MS, LAG_LIMIT_FRACTION_OF_P50 * (phase.latency_ms.p50 or 0.0))


def loop_lag_limit_ms(phase: PhaseSummary) -> float:
    """The loop lag p99 a valid phase stays under: 1 ms, or 5 % of its TTFT p50 (of its
    latency p50 when not streamed): a reply read later than that is the generator's delay."""
    base = phase.ttft_ms.p50 if phase.ttft_ms is not None else phase.latency_ms.p50
    return max(LAG_LIMIT_MS, LAG_LIMIT_FRACTION_OF_P50 * (base or 0.0))


_LOOP_LAG_ADVICE = (
    "the generator read the answers late: its event loop was busy; spread the load over more "
    "client.processes, or run fewer streams or connections per process"
)


def _loop_lag_reason(
    phase: PhaseSummary, process_p99_ms: float | None, processes: int
) -> str | None:
    """Why the phase's loop lag makes the run invalid: the merged p99 over the limit, or,
    with several generator processes, the p99 of the one that lagged most."""
    lag, limit = phase.loop_lag_ms, loop_lag_limit_ms(phase)
    merged = lag.p99 if lag is not None else None
    if merged is not None and merged > limit:
        return (
            f"phase {phase.name}: loop lag p99 {merged:.3f} ms exceeds {limit:.3f} ms "
            f"({_LOOP_LAG_ADVICE})"
        )
    if processes > 1 and process_p99_ms is not None and process_p99_ms > limit:
        return (
            f"phase {phase.name}: loop lag p99 {process_p99_ms:.3f} ms in one of {processes} "
            f"generator processes exceeds {limit:.3f} ms (all merged: "
            f"{'–' if merged is None else f'{merged:.3f} ms'}; {_LOOP_LAG_ADVICE})"
        )
    return None


def lagging(phases: Sequence[PhaseSummary]) -> list[PhaseSummary]:
    """The phases whose send lag p99 is over their limit."""
    return [p for p in phases if p.lag_ms.p99 is not None and p.lag_ms.p99 > lag_limit_ms(p)]


def validity(
    phases: Sequence[PhaseSummary],
    generator_cpu_pct: float | None,
    lag_advice: Mapping[str, str] | None = None,
    *,
    process_loop_lag: Mapping[str, float] | None = None,
    processes: int = 1,
) -> tuple[bool, list[str]]:
    """A run is valid only when the generator kept up (DESIGN §5); reasons say why not, with
    the cause of a phase's lag when ``lag_advice`` names it (``analysis/lag.py``). With
    several generator processes, ``process_loop_lag`` (per phase, the p99 of the process that
    lagged most: ``generator.loop_lag_p99_ms``) judges each process by its own loop lag."""
    own = process_loop_lag or {}
    reasons: list[str] = []
    late = {p.name for p in lagging(phases)}
    for phase in phases:
        if phase.name in late:
            why = (lag_advice or {}).get(phase.name) or (
                "the generator fell behind its schedule; lower the rate, raise "
                "client.connections, or use more client.processes"
            )
            reasons.append(
                f"phase {phase.name}: send lag p99 {phase.lag_ms.p99:.3f} ms exceeds "
                f"{lag_limit_ms(phase):.3f} ms ({why})"
            )
        if loop_reason := _loop_lag_reason(phase, own.get(phase.name), processes):
            reasons.append(loop_reason)
        if phase.dropped:
            reasons.append(
                f"phase {phase.name}: {phase.dropped} arrivals dropped (no free connection "
                "within the request timeout; raise client.connections)"
            )
    if generator_cpu_pct is not None and generator_cpu_pct >= GENERATOR_CPU_LIMIT_PCT:
        reasons.append(
            f"generator CPU {generator_cpu_pct:.0f}% ≥ {GENERATOR_CPU_LIMIT_PCT:.0f}% of a core "
            "(its figures include its own queueing; use client.processes or client.sender: fast)"
        )
    return not reasons, reasons


# --- comparison statistics (compare.py): bootstrap over seconds, Mann-Whitney over runs --------
#
# The bootstrap works on count matrices (seconds x HDR buckets, see intervals.py), never on
# individual requests, so its cost grows with the length of a run in seconds, not its requests.


def block_sums(counts: IntArray, block: int) -> FloatArray:
    """Rows summed in consecutive blocks of ``block`` rows (the last block may be shorter)."""
    starts = np.arange(0, counts.shape[0], block)
    return np.add.reduceat(counts.astype(np.float64), starts, axis=0)


def block_length(n_seconds: int) -> int:
    """Seconds per bootstrap block: n^(1/3), the usual rate for block bootstraps, but never so
    long that fewer than 20 blocks remain (a handful of blocks resamples into a handful of
    distinct replays).

    Blocks keep a second's neighbours together, so slow drifts and bursts that span a few
    seconds stay in the resamples instead of being averaged away.
    """
    return max(1, min(int(n_seconds ** (1 / 3) + 1e-9), n_seconds // MIN_BLOCKS))


def resample_weights(n_blocks: int, resamples: int, rng: np.random.Generator) -> FloatArray:
    """How often each block is drawn in each resample: ``(resamples, n_blocks)``."""
    draws = rng.integers(0, n_blocks, size=(resamples, n_blocks))
    offsets = (np.arange(resamples) * n_blocks)[:, None]
    flat = np.bincount((draws + offsets).ravel(), minlength=resamples * n_blocks)
    return flat.reshape(resamples, n_blocks).astype(np.float64)


def cumulative_by_bucket(blocks: FloatArray) -> FloatArray:
    """``(buckets, blocks)``: row b holds each block's count of values in buckets 0..b."""
    return np.ascontiguousarray(np.cumsum(blocks, axis=1).T)


def weighted_percentiles(
    cumulative: FloatArray, grid: BucketGrid, weights: FloatArray, percentile: float
) -> FloatArray:
    """The percentile of each resample's merged histogram, exactly as HdrHistogram defines it.

    Resample r merges its blocks with ``weights[r]``; its percentile is the highest equivalent
    value (the lowest for p = 0) of the first bucket whose cumulative count reaches the rank
    ⌈p/100 · total⌉ (``recorder.percentile.percentile_ranks``, the reference rule). Instead of
    forming every merged histogram (resamples x blocks x buckets), a vectorised binary search
    over the buckets evaluates only log2(buckets) cumulative sums per resample.
    ``cumulative`` comes from ``cumulative_by_bucket``.
    """
    n_buckets = cumulative.shape[0]
    rows = weights.shape[0]
    if n_buckets == 0:
        return np.full(rows, np.nan)
    totals = weights @ cumulative[-1]
    target = percentile_ranks(percentile, totals)
    lo = np.zeros(rows, dtype=np.int64)
    hi = np.full(rows, n_buckets - 1, dtype=np.int64)
    for _ in range(int(np.ceil(np.log2(n_buckets))) + 1):
        mid = (lo + hi) // 2
        reached = np.einsum("rk,rk->r", weights, cumulative[mid]) >= target
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid + 1)
    values = (grid.lows if percentile == 0.0 else grid.highs)[hi].astype(np.float64)
    values[totals == 0] = np.nan
    return values


def relative_diffs(base: FloatArray, cand: FloatArray) -> FloatArray:
    """cand/base − 1 per resample, NaN where the base resample is zero or missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        diffs = cand / base - 1.0
    diffs[~np.isfinite(diffs)] = np.nan
    return diffs


def _expansion(n_blocks: int) -> tuple[float, Any]:
    """sqrt(n/(n−1)) and Student's t with n−1 degrees of freedom, for n resampled blocks."""
    from scipy.stats import t  # scipy loads only when a comparison needs it

    return float(np.sqrt(n_blocks / (n_blocks - 1))), t(n_blocks - 1)


def bootstrap_interval(
    diffs: FloatArray, n_blocks: int, level: float = 0.95
) -> tuple[float, float]:
    """Expanded percentile interval of the bootstrap distribution of a difference.

    A plain percentile interval is too narrow with few resampling units (its variance is
    short by (n−1)/n and its tails are normal, not t). Hesterberg's expanded percentile
    interval widens the quantiles taken: α' = 2·Φ̄(sqrt(n/(n−1)) · t_{n−1, 1−α/2}); with 20
    blocks a 95 % interval takes the 1.6 % and 98.4 % quantiles, with 200 the 2.4 % and 97.6 %.
    """
    from scipy.stats import norm

    factor, student = _expansion(n_blocks)
    tail = float(norm.sf(factor * student.isf((1 - level) / 2)))
    lo, hi = np.quantile(diffs, [tail, 1 - tail])
    return float(lo), float(hi)


def bootstrap_p_value(diffs: FloatArray, n_blocks: int) -> float:
    """Two-sided p-value of "no difference", consistent with ``bootstrap_interval``.

    The share of resamples on the far side of 0 (doubled; the +1s keep it above 2/(R+1), all
    that R resamples can claim) is the α' at which the expanded interval touches 0; mapping α'
    back through the expansion gives p, so p < α when the interval excludes 0 (up to ties).
    """
    from scipy.stats import norm

    below = int(np.count_nonzero(diffs <= 0))
    above = int(np.count_nonzero(diffs >= 0))
    share = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1))
    factor, student = _expansion(n_blocks)
    return min(1.0, 2 * float(student.sf(float(norm.isf(share / 2)) / factor)))


def mann_whitney_p(base: Sequence[float], cand: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (exact for small samples without ties)."""
    from scipy.stats import mannwhitneyu  # scipy loads only when a comparison needs it

    if len(set(base) | set(cand)) == 1:
        return 1.0  # identical samples: scipy would return nan
    return float(mannwhitneyu(cand, base, alternative="two-sided", method="auto").pvalue)


@lru_cache(maxsize=64)
def _u_cdf(n: int, m: int) -> tuple[float, ...]:
    """P(U ≤ u), u = 0..n·m, of the Mann-Whitney statistic under H0 (no ties).

    Counts of arrangements by recurrence: f(i, j)(u) = f(i−1, j)(u − j) + f(i, j−1)(u).
    """
    table = [[np.ones(1)] * (m + 1)] + [[np.ones(1)] + [np.zeros(0)] * m for _ in range(n)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            counts = np.zeros(i * j + 1)
            left, up = table[i - 1][j], table[i][j - 1]
            counts[j : j + len(left)] += left
            counts[: len(up)] += up
            table[i][j] = counts
    final = table[n][m]
    return tuple(np.cumsum(final) / final.sum())


def _moses_rank(n: int, m: int, alpha: float) -> int:
    """k such that [D_(k), D_(nm+1−k)] of the sorted pairwise differences covers ≥ 1 − α."""
    if n <= EXACT_U_LIMIT and m <= EXACT_U_LIMIT:
        return int(np.count_nonzero(np.asarray(_u_cdf(n, m)) <= alpha / 2))
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    return max(0, int(np.floor(n * m / 2 - z * np.sqrt(n * m * (n + m + 1) / 12))))


def shift_interval(
    base: Sequence[float], cand: Sequence[float], level: float = 0.95
) -> tuple[float, float]:
    """Distribution-free interval of the shift cand − base (Hodges-Lehmann / Moses).

    The interval holds the shifts the Mann-Whitney test would not reject at 1 − level, so it
    agrees with the p-value; with 4 runs a side its true coverage is 97 % (the discrete U).
    """
    diffs = np.sort(np.subtract.outer(np.asarray(cand), np.asarray(base)).ravel())
    k = _moses_rank(len(base), len(cand), 1 - level)
    if k == 0:
        return float("-inf"), float("inf")
    return float(diffs[k - 1]), float(diffs[len(diffs) - k])


class SecondsBootstrap:
    """Resamples of one phase's seconds, in blocks, shared by every statistic of that phase.

    The seconds are cut into consecutive blocks of ``block_length`` seconds (the last may be
    shorter) and each resample draws as many blocks, with replacement. All statistics of a side
    use the same draws, so a resample is one plausible replay of the whole phase (its
    latencies, rates and errors together), not an independent draw per figure.
    """

    def __init__(self, phase: PhaseSeconds, resamples: int, rng: np.random.Generator) -> None:
        self.phase = phase
        self.block = block_length(len(phase.seconds))
        starts = np.arange(0, len(phase.seconds), self.block)
        self.lengths = np.diff(np.append(starts, len(phase.seconds))).astype(np.float64)
        self.n_blocks = len(starts)
        self.weights = resample_weights(self.n_blocks, resamples, rng)
        self._cache: dict[str, tuple[FloatArray, BucketGrid]] = {}
        self._cumulative: dict[str, FloatArray] = {}

    def _blocks(self, metric: str) -> tuple[FloatArray, BucketGrid]:
        if metric not in self._cache:
            data = self.phase.metric(metric)
            self._cache[metric] = block_sums(data.counts, self.block), data.grid
        return self._cache[metric]

    def percentile(self, metric: str, percentile: float) -> FloatArray:
        blocks, grid = self._blocks(metric)
        if metric not in self._cumulative:
            self._cumulative[metric] = cumulative_by_bucket(blocks)
        return weighted_percentiles(self._cumulative[metric], grid, self.weights, percentile)

    def mean(self, metric: str) -> FloatArray:
        """Mean of the merged histogram, with HdrHistogram's median-equivalent bucket values."""
        blocks, grid = self._blocks(metric)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = (self.weights @ (blocks @ grid.mids)) / (self.weights @ blocks.sum(axis=1))
        return np.asarray(means, dtype=np.float64)

    def count(self, metric: str, at_most_us: float | None = None) -> FloatArray:
        """Values recorded per resample (only those ≤ ``at_most_us`` when given)."""
        blocks, grid = self._blocks(metric)
        if at_most_us is not None:
            blocks = blocks[:, grid.lows <= at_most_us]
        return np.asarray(self.weights @ blocks.sum(axis=1), dtype=np.float64)

    def rate_ratio(self, metrics: Sequence[str], at_most_us: float | None = None) -> FloatArray:
        """Each resample's values per second relative to the phase's own.

        A rate is measured once over the phase; this ratio scales it. Dividing by the seconds
        drawn keeps a shorter last block from passing for a drop in rate.
        """
        totals = sum(self.count(m, at_most_us if m == "latency" else None) for m in metrics)
        seconds = self.weights @ self.lengths
        observed = sum(self.count_total(m, at_most_us if m == "latency" else None) for m in metrics)
        if not observed:
            return np.full(self.weights.shape[0], np.nan)
        per_second = np.asarray(totals, dtype=np.float64) / seconds
        return per_second / (observed / len(self.phase.seconds))

    def count_total(self, metric: str, at_most_us: float | None = None) -> float:
        blocks, grid = self._blocks(metric)
        if at_most_us is not None:
            blocks = blocks[:, grid.lows <= at_most_us]
        return float(blocks.sum())
