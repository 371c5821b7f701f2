"""``latency.hlog``, the interval log (DESIGN §7): written, read and merged here only.

The log is a standard HdrHistogram interval log: one histogram per second, phase and metric,
tagged ``phase/metric``, timestamps in seconds relative to the BaseTime line, so HdrHistogram's
own tools read it too. :class:`IntervalLogWriter` writes it; :func:`read_intervals` is the one
parser (each line checked, decoded by hdrh's C decoder, errors naming the file and line), and
everything else is built on it:

- :func:`merge_interval_logs`: several generator processes' logs as one (summed per second
  and tag: HDR histograms add without loss);
- :func:`tag_totals`: each tag's histogram over the whole run (``run --repeat`` aggregates);
- :func:`read_interval_log`: per-phase, per-second count arrays for statistics over seconds
  (the block bootstrap of ``compare``, the sweep's verdicts, the report's time plots): for each
  phase a vector of second keys, and for each metric a ``(seconds, buckets)`` matrix of counts
  on a compact grid of the HDR buckets actually used. Only each line's non-zero buckets are
  kept, so a million-request run reads in well under a second.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from infbench.errors import ResultFormatError

__all__ = [
    "BucketGrid",
    "Interval",
    "IntervalLogWriter",
    "MetricSeconds",
    "PhaseSeconds",
    "bucket_layout",
    "fold_tail",
    "merge_interval_logs",
    "pool",
    "read_interval_log",
    "read_intervals",
    "tag_totals",
    "union_grid",
]

IntArray = npt.NDArray[np.int64]


class IntervalLogWriter:
    """A standard HdrHistogram interval log with one tag per phase and metric.

    Timestamps are seconds relative to the BaseTime line, so HdrHistogram's own log readers
    (``hdrh.log.HistogramLogReader``, HistogramLogProcessor) place every interval correctly.
    """

    def __init__(self, stream: IO[str], start_epoch_s: float) -> None:
        self._stream = stream
        stream.write("#[Histogram log format version 1.3]\n")
        stream.write("#[infbench interval log: values in microseconds, tags are phase/metric]\n")
        stream.write(f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch)]\n")
        stream.write(f"#[BaseTime: {start_epoch_s:.3f} (seconds since epoch)]\n")
        stream.write(
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
        )

    def write(self, tag: str, start_s: float, length_s: float, histogram: HdrHistogram) -> None:
        payload = histogram.encode().decode("ascii")
        max_ms = histogram.get_max_value() / 1000.0
        self._stream.write(f"Tag={tag},{start_s:.3f},{length_s:.3f},{max_ms:.3f},{payload}\n")

    def flush(self) -> None:
        self._stream.flush()


@dataclass(frozen=True)
class Interval:
    """One line of the log: a phase's histogram of one metric over [start_s, start_s + length_s)."""

    phase: str
    metric: str
    start_s: float
    length_s: float
    histogram: HdrHistogram

    @property
    def tag(self) -> str:
        return f"{self.phase}/{self.metric}"


def _seconds(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ResultFormatError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ResultFormatError(f"{where}: {what} {text!r} is not finite")
    return value


def _decode(payload: str, where: str) -> HdrHistogram:
    try:
        return HdrHistogram.decode(payload)
    except Exception as exc:  # hdrh raises TypeError, zlib.error, its own and ctypes errors
        raise ResultFormatError(
            f"{where}: histogram does not decode ({type(exc).__name__}: {exc}); "
            "the file is corrupt or truncated"
        ) from None


def _parse_line(line: str, where: str) -> Interval | None:
    """``Tag=phase/metric,start,length,max,payload`` as an Interval (None: not a tagged line)."""
    if not line.startswith("Tag="):
        return None  # untagged lines are not infbench's; headers start with # or "
    parts = line.rstrip("\r\n").split(",", 4)
    if len(parts) != 5 or "/" not in parts[0]:
        raise ResultFormatError(
            f"{where}: expected Tag=phase/metric,start,length,max,histogram; "
            "the file is corrupt or truncated"
        )
    phase, metric = parts[0][4:].rsplit("/", 1)
    start = _seconds(parts[1], "start time", where)
    length = _seconds(parts[2], "interval length", where)
    return Interval(phase, metric, start, length, _decode(parts[4], where))


def read_intervals(path: Path) -> Iterator[Interval]:
    """Every tagged interval of the log at ``path``, in file order.

    A line that does not parse or decode raises ResultFormatError naming the file and line.
    """
    try:
        handle = open(path, encoding="ascii")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ResultFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                interval = _parse_line(line, f"{path}:{number}")
                if interval is not None:
                    yield interval
        except UnicodeDecodeError as exc:
            raise ResultFormatError(f"{path}: not an ASCII interval log ({exc})") from None


def merge_interval_logs(out: Path, parts: Iterable[Path], start_epoch_s: float) -> None:
    """Write one log at ``out`` holding the ``parts`` (one per generator process) summed per
    interval and tag; a part that does not exist (a process that recorded nothing) is skipped.
    """
    sums: dict[tuple[float, str], HdrHistogram] = {}
    lengths: dict[tuple[float, str], float] = {}
    for part in parts:
        for interval in read_intervals(part) if part.exists() else ():
            key = (interval.start_s, interval.tag)
            if key in sums:
                sums[key].add(interval.histogram)
                lengths[key] = max(lengths[key], interval.length_s)
            else:
                sums[key], lengths[key] = interval.histogram, interval.length_s
    with open(out, "w", encoding="ascii") as handle:
        log = IntervalLogWriter(handle, start_epoch_s)
        for key in sorted(sums):
            log.write(key[1], key[0], lengths[key], sums[key])


def tag_totals(path: Path) -> dict[str, HdrHistogram]:
    """Each ``phase/metric`` tag's intervals added together: its histogram over the whole run."""
    totals: dict[str, HdrHistogram] = {}
    for interval in read_intervals(path):
        total = totals.get(interval.tag)
        if total is None:
            totals[interval.tag] = interval.histogram
        else:
            total.add(interval.histogram)
    return totals


@dataclass(frozen=True)
class BucketGrid:
    """HDR buckets, ascending: lowest, highest and median equivalent value of each (µs)."""

    lows: IntArray
    highs: IntArray
    mids: IntArray

    def __len__(self) -> int:
        return len(self.lows)


@dataclass(frozen=True)
class MetricSeconds:
    """One metric of one phase: ``counts[k, b]`` values in bucket ``b`` during second ``k``."""

    grid: BucketGrid
    counts: IntArray

    @classmethod
    def empty(cls, rows: int) -> MetricSeconds:
        """No values in any of ``rows`` seconds, on a grid of no buckets."""
        grid = BucketGrid(*(np.zeros(0, dtype=np.int64) for _ in range(3)))
        return cls(grid, np.zeros((rows, 0), dtype=np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def on_grid(self, grid: BucketGrid) -> MetricSeconds:
        """The same counts on a grid holding every bucket of this one (a union of grids)."""
        columns = np.searchsorted(grid.lows, self.grid.lows)
        counts = np.zeros((self.counts.shape[0], len(grid)), dtype=np.int64)
        counts[:, columns] = self.counts
        return MetricSeconds(grid, counts)


@dataclass(frozen=True)
class PhaseSeconds:
    """A phase's seconds (rows shared by every metric) and its metrics' count matrices."""

    seconds: IntArray
    metrics: dict[str, MetricSeconds]

    def metric(self, name: str) -> MetricSeconds:
        """The named metric, or an all-zero one when the log never recorded it."""
        found = self.metrics.get(name)
        return found if found is not None else MetricSeconds.empty(len(self.seconds))


@lru_cache(maxsize=16)
def bucket_layout(lowest: int, highest: int, digits: int) -> BucketGrid:
    """Equivalent-value ranges of every counts index of one HDR layout (as hdrh computes them)."""
    probe = HdrHistogram(lowest, highest, digits)
    index = np.arange(probe.counts_len, dtype=np.int64)
    half_mag = probe.sub_bucket_half_count_magnitude
    half = probe.sub_bucket_half_count
    bucket = (index >> half_mag) - 1
    sub = (index & (half - 1)) + half
    first = bucket < 0
    sub[first] -= half
    bucket[first] = 0
    lows = sub << (bucket + probe.unit_magnitude)
    size = np.left_shift(np.int64(1), bucket + probe.unit_magnitude)
    return BucketGrid(lows=lows, highs=lows + size - 1, mids=lows + (size >> 1))


def _nonzero(hist: HdrHistogram) -> tuple[IntArray, IntArray, BucketGrid]:
    """Non-zero buckets of one histogram: indices, counts, and the layout they index."""
    counts = np.ctypeslib.as_array(hist.counts)
    nonzero = np.flatnonzero(counts)
    layout = bucket_layout(
        hist.lowest_trackable_value, hist.highest_trackable_value, hist.significant_figures
    )
    return nonzero, counts[nonzero].astype(np.int64), layout


@dataclass
class _Pending:
    """Sparse entries of one phase/metric before they become a dense matrix."""

    seconds: list[int]
    lows: list[IntArray]
    highs: list[IntArray]
    mids: list[IntArray]
    counts: list[IntArray]


def _read_pending(path: Path) -> dict[tuple[str, str], _Pending]:
    pending: dict[tuple[str, str], _Pending] = defaultdict(lambda: _Pending([], [], [], [], []))
    for interval in read_intervals(path):
        index, counts, layout = _nonzero(interval.histogram)
        entry = pending[(interval.phase, interval.metric)]
        entry.seconds.append(math.floor(interval.start_s + 1e-6))
        entry.lows.append(layout.lows[index])
        entry.highs.append(layout.highs[index])
        entry.mids.append(layout.mids[index])
        entry.counts.append(counts)
    return pending


def _grid_of(lows: IntArray, highs: IntArray, mids: IntArray) -> tuple[BucketGrid, IntArray]:
    """The sorted distinct buckets and, for each entry, its column in that grid."""
    unique, first, columns = np.unique(lows, return_index=True, return_inverse=True)
    return BucketGrid(unique, highs[first], mids[first]), columns.reshape(-1)


def _dense(entry: _Pending, row_of: dict[int, int], n_rows: int) -> MetricSeconds:
    sizes = [len(c) for c in entry.counts]
    if not sizes or sum(sizes) == 0:
        return MetricSeconds.empty(n_rows)
    grid, columns = _grid_of(
        np.concatenate(entry.lows), np.concatenate(entry.highs), np.concatenate(entry.mids)
    )
    rows = np.repeat([row_of[s] for s in entry.seconds], sizes)
    flat = np.bincount(
        rows * len(grid) + columns,
        weights=np.concatenate(entry.counts).astype(np.float64),
        minlength=n_rows * len(grid),
    )
    return MetricSeconds(grid, np.rint(flat).astype(np.int64).reshape(n_rows, len(grid)))


def read_interval_log(path: Path) -> dict[str, PhaseSeconds]:
    """Per phase: every second from its first to its last interval (quiet seconds count 0).

    Lines for the same phase, metric and second (several generator processes) are summed.
    A line that does not parse or decode raises ResultFormatError naming the file and line.
    """
    pending = _read_pending(path)
    by_phase: dict[str, list[str]] = defaultdict(list)
    for phase, metric in pending:
        by_phase[phase].append(metric)
    result = {}
    for phase, metrics in by_phase.items():
        used = [s for m in metrics for s in pending[(phase, m)].seconds]
        seconds = np.arange(min(used), max(used) + 1, dtype=np.int64)
        row_of = {int(s): i for i, s in enumerate(seconds)}
        dense = {m: _dense(pending[(phase, m)], row_of, len(seconds)) for m in metrics}
        result[phase] = PhaseSeconds(seconds, dense)
    return result


def union_grid(grids: Iterable[BucketGrid]) -> BucketGrid:
    """Every bucket of every grid, ascending by lowest value (grids of one layout share keys)."""
    grids = list(grids)
    lows = np.concatenate([g.lows for g in grids])
    highs = np.concatenate([g.highs for g in grids])
    mids = np.concatenate([g.mids for g in grids])
    return _grid_of(lows, highs, mids)[0]


def fold_tail(phase: PhaseSeconds, end_s: float) -> PhaseSeconds:
    """Add the seconds after the phase's end to its last second.

    Intervals are keyed by completion time, so requests sent just before a phase ends complete
    in a short extra second; left alone, that stub would pass for a second of collapsed
    throughput and swamp the rate statistics.
    """
    last = math.ceil(end_s - 1e-6) - 1
    keep = phase.seconds <= last
    if keep.all() or not keep.any():
        return phase
    row = int(np.flatnonzero(keep)[-1])
    metrics = {}
    for name, data in phase.metrics.items():
        counts = data.counts[keep].copy()
        counts[row] += data.counts[~keep].sum(axis=0)
        metrics[name] = MetricSeconds(data.grid, counts)
    return PhaseSeconds(phase.seconds[keep], metrics)


def pool(parts: Sequence[PhaseSeconds]) -> PhaseSeconds:
    """Several runs of one phase (repetitions) as one run: their seconds stacked end to end."""
    if len(parts) == 1:
        return parts[0]
    names = sorted({name for part in parts for name in part.metrics})
    metrics = {}
    for name in names:
        pieces = [part.metric(name) for part in parts]
        grid = union_grid(piece.grid for piece in pieces)
        stacked = np.vstack([piece.on_grid(grid).counts for piece in pieces])
        metrics[name] = MetricSeconds(grid, stacked)
    seconds = np.arange(sum(len(part.seconds) for part in parts), dtype=np.int64)
    return PhaseSeconds(seconds, metrics)
