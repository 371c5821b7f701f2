"""Percentiles by HdrHistogram's reference definition (DESIGN §5).

Java HdrHistogram's ``getValueAtPercentile`` (2.1.10 and later) is the definition every
percentile infbench reports follows: of N recorded values, the value at percentile p is found
at rank ``ceil(p/100 · N)`` (at least 1), the first bucket whose running count reaches the rank,
and reported as the highest value equivalent to that bucket (the lowest one for p = 0 exactly).
The rank is computed in float64 exactly as the Java code does, one ulp below p included, so the
results are equal bit for bit (tests/reference/Percentiles.java checks it against the jar).

The Python ``hdrhistogram`` package rounds the rank to nearest instead, which reports tails of
small samples one value too low (p99 of 388 values is the 384th, not the 385th); nothing here
calls its ``get_value_at_percentile``.

This module sits next to the histogram's construction so that the recorder, the analysis, the
report and the Ray driver all import it without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = [
    "bucket_percentiles",
    "percentile_rank",
    "percentile_ranks",
    "value_at_percentile",
    "values_at_percentiles",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def percentile_rank(percentile: float, total: int) -> int:
    """The rank (1-based) of the value at ``percentile`` (0–100) among ``total`` values.

    As Java's ``getValueAtPercentile``: p one ulp lower, clamped to [0, 100], then
    ``ceil(p · total / 100)`` in float64, at least 1.
    """
    if math.isnan(percentile):
        raise ValueError("percentile is NaN")
    requested = min(max(math.nextafter(percentile, -math.inf), 0.0), 100.0)
    return max(math.ceil(requested * total / 100.0), 1)


def percentile_ranks(percentiles: npt.ArrayLike, totals: npt.ArrayLike) -> FloatArray:
    """``percentile_rank`` for arrays (broadcast against each other), as float64.

    The same float64 operations in the same order, so every element equals the scalar rank.
    """
    q = np.asarray(percentiles, dtype=np.float64)
    if np.isnan(q).any():
        raise ValueError("percentile is NaN")
    requested = np.minimum(np.maximum(np.nextafter(q, -np.inf), 0.0), 100.0)
    ranks: FloatArray = np.maximum(
        np.ceil(requested * np.asarray(totals, dtype=np.float64) / 100.0), 1.0
    )
    return ranks


def values_at_percentiles(hist: HdrHistogram, percentiles: Sequence[float]) -> list[int]:
    """The values (in the histogram's unit) at each of ``percentiles``, in one pass.

    Equal to Java HdrHistogram's ``getValueAtPercentile`` for each, 0 for an empty histogram
    as there. One cumulative sum over the counts (numpy, no Python loop over buckets) serves
    every percentile.
    """
    cumulative = np.cumsum(np.ctypeslib.as_array(hist.counts), dtype=np.int64)
    total = int(cumulative[-1]) if len(cumulative) else 0
    if total == 0:
        return [0 for _ in percentiles]
    values: list[int] = []
    for percentile in percentiles:
        index = int(np.searchsorted(cumulative, percentile_rank(percentile, total)))
        value = hist.get_value_from_index(index)
        if percentile == 0.0:
            values.append(int(hist.get_lowest_equivalent_value(value)))
        else:
            values.append(int(hist.get_highest_equivalent_value(value)))
    return values


def value_at_percentile(hist: HdrHistogram, percentile: float) -> int:
    """The value at one percentile (0–100), as Java HdrHistogram's ``getValueAtPercentile``."""
    return values_at_percentiles(hist, (percentile,))[0]


def bucket_percentiles(
    counts: npt.ArrayLike, lows: IntArray, highs: IntArray, percentiles: npt.ArrayLike
) -> FloatArray:
    """Values at ``percentiles`` of histograms given as bucket counts, by the same rule.

    ``counts`` holds one histogram (1-D, ``(buckets,)``) or one per row (``(rows, buckets)``);
    ``lows``/``highs`` are each bucket's lowest and highest equivalent value. The result is
    ``(len(percentiles),)`` or ``(rows, len(percentiles))``; histograms without values give NaN.
    All rows are searched at once: each row's running counts are shifted above the previous
    row's, so one ``searchsorted`` over the flattened array finds every rank.
    """
    matrix = np.atleast_2d(np.asarray(counts, dtype=np.int64))
    q = np.atleast_1d(np.asarray(percentiles, dtype=np.float64))
    rows, n_buckets = matrix.shape
    values = np.full((rows, len(q)), np.nan)
    if n_buckets and rows:
        cumulative = np.cumsum(matrix, axis=1)
        totals = cumulative[:, -1]
        ranks = percentile_ranks(q[None, :], totals[:, None]).astype(np.int64)
        offsets = np.arange(rows, dtype=np.int64) * (int(totals.max()) + 1)
        flat = (cumulative + offsets[:, None]).ravel()
        found = np.searchsorted(flat, ranks + offsets[:, None])
        index = np.minimum(found - (np.arange(rows) * n_buckets)[:, None], n_buckets - 1)
        values = np.where(q[None, :] == 0.0, lows[index], highs[index]).astype(np.float64)
        values[totals == 0] = np.nan
    result: FloatArray = values if np.ndim(counts) == 2 else values[0]
    return result
