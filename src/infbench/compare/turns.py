"""Per-turn TTFT of two conversation runs (DESIGN §5c): ``ttft_p50_turnK`` / ``ttft_p99_turnK``.

The per-second interval log cannot tell turns apart, so these rows are tested on the raw
rows: the TTFT of every answered request of turn k (one per session, so the values are as
independent as the sessions), each side resampled with replacement (seeded by phase, turn
and side), the relative difference of the percentile in each resample giving the interval
and p-value by the same expanded-percentile bootstrap as the other rows (analysis/stats.py),
with the requests as the resampling units. A quantile is tested only with ``min_tail``
values beyond it on each side; otherwise the row shows the figures with verdict ``~``.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np

from infbench.analysis.metrics import TURN_METRICS, turn_value
from infbench.analysis.stats import bootstrap_interval, bootstrap_p_value, relative_diffs
from infbench.analysis.turns import TURN_SHIFT
from infbench.results.rows import read_row_chunks
from infbench.results.rundir import RunResult

__all__ = ["Knobs", "TurnTest", "turn_tests"]

Knobs = tuple[int, int, int]  # the comparison's seed, resamples and min_tail

Test = tuple[tuple[float, float], float, Literal["bootstrap"]]
# (metric, (base, cand) figures, (n base, n cand) requests, the test or None)
TurnTest = tuple[str, tuple[float | None, float | None], tuple[int, int], Test | None]
_COLUMNS = {"seq": "int64", "phase": "str", "intended_ns": "int64", "first_token_ns": "str",
            "error": "str"}  # fmt: skip


def turn_tests(phase: str, base: RunResult, cand: RunResult, settings: Knobs) -> list[TurnTest]:
    """A row per turn metric both runs have for ``phase``."""
    entries = (base.record.phase(phase), cand.record.phase(phase))
    if entries[0] is None or entries[1] is None or not (entries[0].turns and entries[1].turns):
        return []
    values = (_ttft_by_turn(base.path, phase), _ttft_by_turn(cand.path, phase))
    out: list[TurnTest] = []
    for metric, (turn, quantile) in TURN_METRICS.items():
        points = (turn_value(entries[0], metric), turn_value(entries[1], metric))
        if points[0] is None or points[1] is None:
            continue
        samples = (values[0].get(turn, []), values[1].get(turn, []))
        q = 50.0 if quantile == "p50" else 99.0
        test = _test(samples, q, settings, (phase, turn))
        out.append((metric, points, (len(samples[0]), len(samples[1])), test))
    return out


def _ttft_by_turn(run_dir: Path, phase: str) -> dict[int, list[float]]:
    rows = run_dir / "requests.csv.gz"
    found: dict[int, list[float]] = defaultdict(list)
    if not rows.exists():
        return found
    for chunk in read_row_chunks(rows, _COLUMNS):
        columns = (chunk[c].tolist() for c in _COLUMNS)
        for seq, name, intended, first, error in zip(*columns, strict=True):
            if name == phase and first and not error:
                found[(seq >> TURN_SHIFT) + 1].append((int(first) - intended) / 1e6)
    return found


def _test(
    samples: tuple[list[float], list[float]],
    q: float,
    settings: Knobs,
    key: tuple[str, int],
) -> Test | None:
    seed, resamples, min_tail = settings
    fewest = min(len(s) for s in samples)
    if fewest < 2 or fewest * (1 - q / 100) < min_tail:
        return None
    stats = []
    for side, values in enumerate(samples):
        rng = np.random.default_rng([seed, zlib.crc32(key[0].encode()), key[1], side])
        data = np.asarray(values, dtype=np.float64)
        picks = rng.integers(0, len(data), size=(resamples, len(data)))
        stats.append(np.percentile(data[picks], q, axis=1, method="inverted_cdf"))
    diffs = relative_diffs(stats[0], stats[1])
    finite = diffs[np.isfinite(diffs)]
    if len(finite) < 0.99 * resamples:
        return None
    return bootstrap_interval(finite, fewest), bootstrap_p_value(finite, fewest), "bootstrap"
