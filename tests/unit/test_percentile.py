"""Percentiles by HdrHistogram's reference definition (Java ``getValueAtPercentile``).

Two checks of every percentile function (the scalar walk over an HdrHistogram, the count
matrices of the report and the sweep, compare's bootstrap resamples):

- ranks pinned by hand: the value at percentile p of N values is found at rank ⌈p/100 · N⌉
  (at least 1) and reported as the highest value equivalent to it (the lowest for p = 0);
- Java's own HdrHistogram on seeded random samples (tests/reference/Percentiles.java), where
  java, its compiler and the HdrHistogram jar are installed (.ci/run installs them).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from infbench.analysis.stats import cumulative_by_bucket, histogram_summary, weighted_percentiles
from infbench.recorder.hdr import new_histogram
from infbench.results.hlog import BucketGrid, bucket_layout
from infbench.results.percentile import (
    bucket_percentiles,
    percentile_rank,
    percentile_ranks,
    value_at_percentile,
    values_at_percentiles,
)
from infbench.results.rundata import percentile_values

HIGHEST_US = 25_000_000  # 3 × 5 s timeout + 10 s, as the recorder sizes it
LAYOUT = bucket_layout(1, HIGHEST_US, 3)
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "Percentiles.java"
JARS = (
    "/usr/share/java/hdrhistogram.jar",  # Debian/Ubuntu libhdrhistogram-java
    "/usr/share/java/HdrHistogram.jar",
)


def highest_equivalent(value: int) -> int:
    """By hand for 1 µs .. at 3 digits: buckets are 1 µs wide below 2048, 2 to 4095, 4 to 8191,
    8 to 16383, 16 to 32767, 32 to 65535 (2048 sub-buckets, half of them per doubling)."""
    width = 1 if value < 2048 else 1 << (value.bit_length() - 11)
    return value | (width - 1)


def lowest_equivalent(value: int) -> int:
    width = 1 if value < 2048 else 1 << (value.bit_length() - 11)
    return value & ~(width - 1)


def histogram(values: list[int] | np.ndarray) -> HdrHistogram:
    hist = new_histogram(HIGHEST_US)
    for value in values:
        assert hist.record_value(int(value))
    return hist


def counts_of(values: list[int] | np.ndarray) -> np.ndarray:
    index = np.searchsorted(LAYOUT.lows, np.asarray(values, dtype=np.int64), side="right") - 1
    return np.bincount(index, minlength=len(LAYOUT)).astype(np.int64)


def all_ways(values: list[int] | np.ndarray, percentiles: list[float]) -> dict[str, list[int]]:
    """Every percentile function infbench has, on the same values."""
    hist = histogram(values)
    counts = counts_of(values)
    used = np.flatnonzero(counts)
    grid = BucketGrid(LAYOUT.lows[used], LAYOUT.highs[used], LAYOUT.mids[used])
    seconds = np.vstack([counts_of(values[::2]), counts_of(values[1::2])])[:, used]
    cumulative = cumulative_by_bucket(seconds.astype(np.float64))
    q = np.array(percentiles)
    return {
        "scalar": values_at_percentiles(hist, percentiles),
        "one at a time": [value_at_percentile(hist, p) for p in percentiles],
        "counts": [int(v) for v in bucket_percentiles(counts, LAYOUT.lows, LAYOUT.highs, q)],
        "report": [int(v) for v in percentile_values(counts[used], grid, q)],
        "report rows": [
            int(v) for v in percentile_values(np.vstack([counts, counts])[:, used], grid, q)[1]
        ],
        "bootstrap": [
            int(weighted_percentiles(cumulative, grid, np.ones((1, 2)), p)[0]) for p in percentiles
        ],
    }


# --- ranks pinned by hand (always run) -------------------------------------------------------

# 388 distinct values 10,100 … 48,800 µs, 100 µs apart: each in its own bucket, and bucket
# widths of 8, 16 and 32 µs there, so "highest equivalent" is visible in every result.
DISTINCT = [10_000 + 100 * i for i in range(1, 389)]

# (N, percentile, rank): the rank worked out by hand as ⌈p/100 · N⌉, at least 1.
RANKS = [
    (388, 99.0, 385),  # 384.12 → 385; hdrh's round-to-nearest gives 384
    (388, 50.0, 194),  # exactly 194
    (388, 90.0, 350),  # 349.2 → 350; hdrh: 349
    (388, 95.0, 369),  # 368.6 → 369
    (388, 99.9, 388),  # 387.612 → 388
    (388, 100.0, 388),
    (388, 0.0, 1),  # at least 1 (and the lowest equivalent value)
    (388, 0.1, 1),  # 0.388 → 1; hdrh: 0 → 1
    (388, 25.0, 97),
    (100, 99.0, 99),  # exactly 99: no round-up past an exact rank
    (100, 99.5, 100),  # 99.5 → 100
    (100, 50.5, 51),  # 50.5 → 51
    (10, 50.0, 5),
    (10, 99.0, 10),  # 9.9 → 10
    (10, 14.0, 2),  # 1.4 → 2; hdrh: 1
    (1, 0.0, 1),
    (1, 50.0, 1),
    (1, 100.0, 1),
    (2, 50.0, 1),
    (2, 50.1, 2),
    (7, 99.9, 7),
    (1000, 99.9, 999),  # exactly 999
    # 1.1 · 3000 / 100 is 33.000000000000007 in float64: Java takes p one ulp lower first, so
    # the rank is 33, not 34 (a plain ceil(p/100 · N) would be one too high here).
    (3000, 1.1, 33),
]


@pytest.mark.parametrize(("n", "percentile", "rank"), RANKS)
def test_rank_by_hand(n: int, percentile: float, rank: int) -> None:
    assert percentile_rank(percentile, n) == rank
    assert percentile_ranks([percentile], [n])[0] == rank


@pytest.mark.parametrize(("n", "percentile", "rank"), [r for r in RANKS if r[0] <= len(DISTINCT)])
def test_value_is_the_highest_equivalent_of_the_ranked_value(
    n: int, percentile: float, rank: int
) -> None:
    values = DISTINCT[:n]
    found = values[rank - 1]
    expected = lowest_equivalent(found) if percentile == 0.0 else highest_equivalent(found)
    for way, got in all_ways(values, [percentile]).items():
        assert got == [expected], way


def test_388_values_by_hand() -> None:
    """The case that started it: p99 of 388 values is the 385th (48,500 µs, in a 32 µs bucket)."""
    got = all_ways(DISTINCT, [0.0, 50.0, 90.0, 99.0, 99.9, 100.0])
    assert DISTINCT[384] == 48_500  # the 385th
    expected = [10_096, 29_407, 45_023, 48_511, 48_831, 48_831]
    for way, values in got.items():
        assert values == expected, way
    summary = histogram_summary(histogram(DISTINCT))
    assert summary["p99"] == 48.511 and summary["p50"] == 29.407 and summary["p999"] == 48.831


def test_3000_values_one_ulp() -> None:
    values = [1_000 + i for i in range(3000)]  # 1 µs buckets up to 2047, then 2 µs
    got = all_ways(values, [1.1])
    for way, found in got.items():
        assert found == [values[32]], way  # the 33rd


def test_clamped_and_empty() -> None:
    values = DISTINCT[:10]
    got = all_ways(values, [-5.0, 150.0])
    for way, found in got.items():
        # Java clamps to [0, 100]; only p == 0 exactly reports the lowest equivalent value.
        assert found == [highest_equivalent(values[0]), highest_equivalent(values[-1])], way
    empty = new_histogram(HIGHEST_US)
    assert values_at_percentiles(empty, [50.0, 99.0]) == [0, 0]  # as Java's getValueAtPercentile
    assert histogram_summary(empty, ("p50", "max")) == {"p50": None, "max": None}
    nothing = bucket_percentiles(np.zeros((2, 5), dtype=np.int64), LAYOUT.lows, LAYOUT.highs, [50])
    assert np.isnan(nothing).all() and nothing.shape == (2, 1)
    assert np.isnan(bucket_percentiles(np.zeros(0, dtype=np.int64), LAYOUT.lows, LAYOUT.highs, 5))
    with pytest.raises(ValueError):
        percentile_rank(math.nan, 10)


def test_rows_are_independent() -> None:
    """The flattened search of many rows finds each row's own rank (and NaN for empty rows)."""
    rng = np.random.default_rng(11)
    rows = [rng.integers(1, 100_000, size=n) for n in (5, 0, 1, 388, 17)]
    matrix = np.vstack([counts_of(r) for r in rows])
    q = np.array([0.0, 50.0, 99.0, 100.0])
    got = bucket_percentiles(matrix, LAYOUT.lows, LAYOUT.highs, q)
    for values, row in zip(rows, got, strict=True):
        if len(values):
            assert list(row) == values_at_percentiles(histogram(values), list(q))
        else:
            assert np.isnan(row).all()


# --- against Java HdrHistogram (when installed) ----------------------------------------------

PERCENTILES = [
    0.0,
    0.1,
    1.0,
    1.1,
    10.0,
    25.0,
    33.333333333333336,
    50.0,
    66.66666666666667,
    75.0,
    90.0,
    95.0,
    99.0,
    99.5,
    99.9,
    99.99,
    99.999,
    100.0,
    -1.0,
    101.0,
]
SIZES = [1, 2, 7, 100, 388, 1000, 3000, 12_345]


def _java() -> tuple[str, str]:
    """(java, jar), or skip saying what is missing."""
    java = shutil.which("java")
    jar = os.environ.get("INFBENCH_HDRHISTOGRAM_JAR") or next(
        (j for j in JARS if Path(j).is_file()), None
    )
    if java is None:
        pytest.skip("java not installed (apt-get install default-jdk-headless)")
    if jar is None or not Path(jar).is_file():
        pytest.skip("HdrHistogram jar not found (apt-get install libhdrhistogram-java)")
    modules = subprocess.run(
        [java, "--list-modules"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    if "jdk.compiler" not in modules:
        pytest.skip("java cannot run a source file without a JDK (default-jdk-headless)")
    return java, jar


def _samples() -> list[np.ndarray]:
    """Seeded latencies in µs: lognormal around 20 ms (buckets 1–32 µs wide), heavy ties in a
    narrow range, and values spread over the whole range up to the ceiling."""
    rng = np.random.default_rng(20240613)
    samples = []
    for n in SIZES:
        samples.append(np.clip(rng.lognormal(math.log(20_000), 0.8, n), 1, HIGHEST_US))
        samples.append(rng.integers(1_000, 1_200, size=n))
        samples.append(np.exp(rng.uniform(0, math.log(HIGHEST_US), n)))
    return [np.asarray(s, dtype=np.int64).clip(1, HIGHEST_US) for s in samples]


def test_equal_to_java_hdrhistogram() -> None:
    java, jar = _java()
    samples = _samples()
    lines = [" ".join(repr(p) for p in PERCENTILES)]
    lines += [" ".join(str(int(v)) for v in sample) for sample in samples]
    done = subprocess.run(
        [java, "-cp", jar, str(REFERENCE), str(HIGHEST_US)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reference = [[int(v) for v in line.split()] for line in done.stdout.splitlines()]
    assert len(reference) == len(samples)
    for sample, expected in zip(samples, reference, strict=True):
        for way, got in all_ways(sample, PERCENTILES).items():
            assert got == expected, f"{way}, {len(sample)} values"
