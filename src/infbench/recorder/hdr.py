"""HdrHistograms recorded in bulk: whole arrays of values at numpy speed, exactly as
``HdrHistogram.record_value`` would place them one by one.

``hdrh`` keeps a histogram's counts in a ctypes array; numpy views it in place, so a batch of
values is bucketed with vector arithmetic (the same bucket formula as the reference
implementation), counted with ``np.bincount`` and added in place. Recording values one at a
time costs about a microsecond each in pure Python; this costs a few nanoseconds each.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = ["SIGNIFICANT_DIGITS", "new_histogram", "record_values", "release_histogram"]

SIGNIFICANT_DIGITS = 3
IntArray = npt.NDArray[np.int64]


def new_histogram(highest_us: int) -> HdrHistogram:
    """1 µs .. highest_us at 3 significant digits (DESIGN §7)."""
    return HdrHistogram(1, highest_us, SIGNIFICANT_DIGITS)


def release_histogram(hist: HdrHistogram) -> None:
    """Break the histogram <-> encoder reference cycle of a histogram no longer needed.

    The garbage collector is off while a run measures, so a cycle is never freed: without
    this, the interval histograms made every second grew memory by about 1 MB a second.
    """
    hist.encoder.histogram = None


def counts_index(hist: HdrHistogram, values: IntArray) -> IntArray:
    """The counts-array index of each value (all >= 0), as ``hdrh`` computes it for one."""
    mask = np.int64(hist.sub_bucket_mask)
    # bit length of (value | mask): frexp's exponent, exact since values stay below 2**53
    bit_length = np.frexp((values | mask).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + hist.unit_magnitude)
    base = (bucket + 1) << hist.sub_bucket_half_count_magnitude
    index: IntArray = base + sub_bucket - hist.sub_bucket_half_count
    return index


def record_values(hist: HdrHistogram, values: IntArray) -> None:
    """Record every value (µs, already clamped to 0 .. highest trackable) into ``hist``."""
    if values.size == 0:
        return
    counts = np.ctypeslib.as_array(hist.counts)
    # Counted per index, then added where non-zero: a tenth of the cost of ``np.add.at``
    # (which is slow on uint64 counts: 120 µs for 1,500 values, against 19 µs).
    per_index = np.bincount(counts_index(hist, values))
    present = np.flatnonzero(per_index)
    counts[present] += per_index[present].astype(np.uint64)
    hist.total_count += int(values.size)
    hist.min_value = min(hist.min_value, int(values.min()))
    hist.max_value = max(hist.max_value, int(values.max()))
