"""Percentiles as HdrHistogram's reference implementation defines them (DESIGN §5)."""

from __future__ import annotations

import math

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = ["value_at_percentile"]


def value_at_percentile(hist: HdrHistogram, percentile: float) -> int:
    """The highest value equivalent to the smallest recorded value v with at least
    ``percentile`` % of all values <= v: rank ceil(p/100 · N), at least 1."""
    total = hist.get_total_count()
    if total == 0:
        return 0
    rank = max(math.ceil(min(max(percentile, 0.0), 100.0) / 100.0 * total), 1)
    cumulative = np.cumsum(np.ctypeslib.as_array(hist.counts))
    index = int(np.searchsorted(cumulative, rank))
    return int(hist.get_highest_equivalent_value(hist.get_value_from_index(index)))
