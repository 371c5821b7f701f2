"""What the visual report draws, read back from a result directory (DESIGN §8).

Per second: the rows of ``timeseries.csv``, latency and service percentiles over every phase
(from the interval histograms of ``latency.hlog``) and failed requests by class (from
``requests.csv.gz``). Per phase: each metric's whole histogram, added up from its seconds. An
aggregate of ``run --repeat`` holds no per-second files: its distributions pool every
repetition's histograms and its time series are those of the first repetition.

Anything that does not parse raises ResultFormatError naming the file and the problem.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from infbench.errors import ResultFormatError
from infbench.results.hlog import (
    BucketGrid,
    MetricSeconds,
    PhaseSeconds,
    read_interval_log,
    union_grid,
)
from infbench.results.percentile import bucket_percentiles
from infbench.results.rows import read_row_chunks
from infbench.results.rundir import TIMESERIES_ADDED, TIMESERIES_COLUMNS, RunResult, load_run
from infbench.results.token_data import OutputTokens, by_second, read_output_tokens

__all__ = ["Distribution", "PhaseWindow", "RunData", "load_run_data", "percentile_values"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_T = TypeVar("_T")


def percentile_values(counts: IntArray, grid: BucketGrid, q: FloatArray) -> FloatArray:
    """Values at percentiles ``q`` (0–100) exactly as HdrHistogram's reference
    getValueAtPercentile (``recorder.percentile``): the highest equivalent value of the first
    bucket whose running count reaches the rank ⌈q/100 · n⌉ (the lowest for q = 0).
    ``counts`` may be 2-D (one histogram per row); rows without values give NaN."""
    return bucket_percentiles(counts, grid.lows, grid.highs, q)


@dataclass(frozen=True)
class Distribution:
    """One phase's whole histogram of one metric (µs buckets)."""

    grid: BucketGrid
    counts: IntArray

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def at_ms(self, q: FloatArray) -> FloatArray:
        return percentile_values(self.counts, self.grid, q) / 1000.0


@dataclass(frozen=True)
class PhaseWindow:
    """A phase's span in seconds since the run's start."""

    name: str
    start_s: float
    end_s: float
    warmup: bool


@dataclass(frozen=True)
class RunData:
    """Everything the plots of one run draw; arrays are per second unless named per phase."""

    run: RunResult
    windows: tuple[PhaseWindow, ...]
    timeseries: Mapping[str, FloatArray]
    seconds: IntArray
    percentiles: Mapping[str, FloatArray]  # latency_p50, latency_p99, service_p50, service_p99
    distributions: Mapping[str, Mapping[str, Distribution]]  # metric -> phase -> histogram
    error_seconds: IntArray
    errors: Mapping[str, IntArray]  # class -> failed requests per error second
    notes: tuple[str, ...] = field(default=())
    missing: tuple[str, ...] = field(default=())  # per-second files not in the directory
    output_tokens: OutputTokens | None = None  # streamed runs (token_data.py)

    @property
    def phase_names(self) -> list[str]:
        return [p.name for p in self.run.phases]


def _windows(run: RunResult) -> tuple[PhaseWindow, ...]:
    """The phases' spans (load_run has checked each is [start, end])."""
    spans = run.record.timings.phase_windows_s or {}
    return tuple(
        PhaseWindow(name, float(start), float(end), name == "warmup")
        for name, (start, end) in spans.items()
    )


def _cell(text: str, where: str, column: str) -> float:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ResultFormatError(f"{where}: column {column}: {text!r} is not a number") from None


def read_timeseries(path: Path) -> dict[str, FloatArray]:
    """The numeric columns of timeseries.csv, read by name; empty cells (not measured) become
    NaN, and so do the columns added to format v1 after a folder was written
    (``TIMESERIES_ADDED``). Columns this version does not know are passed over."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultFormatError(f"{path}: cannot read ({exc})") from None
    header = tuple(rows[0]) if rows else ()
    missing = [c for c in TIMESERIES_COLUMNS if c not in header and c not in TIMESERIES_ADDED]
    if missing:
        raise ResultFormatError(
            f"{path}: header lacks the v1 columns {','.join(missing)} "
            f"(expected {','.join(TIMESERIES_COLUMNS)})"
        )
    where = {c: header.index(c) for c in TIMESERIES_COLUMNS if c != "phase" and c in header}
    table: dict[str, list[float]] = {c: [] for c in where}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ResultFormatError(
                f"{path}:{number}: {len(row)} fields, expected {len(header)}; "
                "the file is truncated or corrupt"
            )
        for column, index in where.items():
            table[column].append(_cell(row[index], f"{path}:{number}", column))
    seconds = len(rows) - 1
    absent = (c for c in TIMESERIES_COLUMNS if c != "phase" and c not in where)
    arrays = {c: np.asarray(values, dtype=np.float64) for c, values in table.items()}
    return arrays | {c: np.full(seconds, np.nan) for c in absent}


def read_errors(path: Path) -> tuple[IntArray, dict[str, IntArray]]:
    """Failed requests per second of completion (done_ns) and class, from requests.csv.gz.

    HTTP classes carry their status (``http_5xx 503``). Read in chunks: memory stays flat.
    """
    counts: dict[tuple[int, str], int] = {}
    columns = {"done_ns": "int64", "status": "int64", "error": "str"}
    for chunk in read_row_chunks(path, columns):
        _count_errors(chunk, counts)
    return by_second(counts)


def _count_errors(chunk: Any, counts: dict[tuple[int, str], int]) -> None:
    """Add one chunk's failed rows, grouped by (second of done_ns, class), to ``counts``."""
    failed = chunk[chunk["error"] != ""]
    if failed.empty:
        return
    seconds = failed["done_ns"] // 1_000_000_000
    http = failed["error"].str.startswith("http_") & (failed["status"] > 0)
    labels = failed["error"].where(~http, failed["error"] + " " + failed["status"].astype(str))
    for (second, label), n in labels.groupby([seconds, labels]).size().items():
        counts[(int(second), str(label))] = counts.get((int(second), str(label)), 0) + int(n)


def _merge(parts: Iterable[tuple[IntArray, MetricSeconds]]) -> tuple[IntArray, MetricSeconds]:
    """Several phases' seconds of one metric, summed where the seconds coincide."""
    parts = [p for p in parts if len(p[1].grid)]
    if not parts:
        return np.zeros(0, dtype=np.int64), MetricSeconds.empty(0)
    grid = union_grid(m.grid for _, m in parts)
    first = min(int(s[0]) for s, _ in parts)
    seconds = np.arange(first, max(int(s[-1]) for s, _ in parts) + 1, dtype=np.int64)
    counts = np.zeros((len(seconds), len(grid)), dtype=np.int64)
    for secs, metric in parts:
        counts[secs - first] += metric.on_grid(grid).counts
    return seconds, MetricSeconds(grid, counts)


def _per_second(log: Mapping[str, PhaseSeconds]) -> tuple[IntArray, dict[str, FloatArray]]:
    """Latency and service p50/p99 per second over every phase (warm-up included)."""
    out: dict[str, FloatArray] = {}
    merged = {
        m: _merge((p.seconds, p.metric(m)) for p in log.values()) for m in ("latency", "service")
    }
    seconds = np.union1d(merged["latency"][0], merged["service"][0]).astype(np.int64)
    for metric, (secs, data) in merged.items():
        values = np.full((len(seconds), 2), np.nan)
        if len(secs):
            found = percentile_values(data.counts, data.grid, np.array([50.0, 99.0]))
            values[np.searchsorted(seconds, secs)] = found / 1000.0
        out[f"{metric}_p50"], out[f"{metric}_p99"] = values[:, 0], values[:, 1]
    return seconds, out


def _distributions(
    logs: list[dict[str, PhaseSeconds]], phases: list[str]
) -> dict[str, dict[str, Distribution]]:
    """Each metric's whole histogram per phase, pooled over ``logs`` (repetitions)."""
    result: dict[str, dict[str, Distribution]] = {}
    metrics = ("latency", "service", "lag", "failed", "ttft", "ttft_sent", "tpot", "itl")
    for metric in (*metrics, "loop_lag", "itl_token"):
        per_phase: dict[str, Distribution] = {}
        for phase in phases:
            parts = [log[phase].metric(metric) for log in logs if phase in log]
            parts = [p for p in parts if p.total]
            if parts:
                grid = union_grid(p.grid for p in parts)
                per_phase[phase] = Distribution(
                    grid, sum(p.on_grid(grid).counts.sum(0) for p in parts)
                )
        result[metric] = per_phase
    return result


def _sources(run: RunResult) -> tuple[list[RunResult], tuple[str, ...]]:
    """The directories holding per-second files: the run itself, or its repetitions."""
    names = run.record.repetitions  # load_run has checked they are sub-directory names
    if names is None:
        return [run], ()
    reps = [load_run(run.path / name) for name in names]
    note = (
        f"Aggregate of {len(reps)} repetitions: distributions pool all of them; time series "
        f"show {names[0]} (each repetition directory has its own report)."
    )
    return reps, (note,)


def _read_or_empty(path: Path, missing: list[str], read: Callable[[Path], _T], empty: _T) -> _T:
    """A per-second file that is absent (deleted to save space, say) leaves its plots out;
    one that is present but damaged raises ResultFormatError."""
    if path.exists():
        return read(path)
    missing.append(path.name)
    return empty


def load_run_data(run: RunResult, *, with_rows: bool = True) -> RunData:
    """Read every file the report draws from; ResultFormatError names the one at fault.

    ``with_rows=False`` skips requests.csv.gz (the comparison page draws no errors).
    """
    sources, notes = _sources(run)
    first, missing = sources[0], list[str]()
    no_log: dict[str, PhaseSeconds] = {}
    logs = [
        _read_or_empty(source.path / "latency.hlog", missing, read_interval_log, no_log)
        for source in sources
    ]
    seconds, percentiles = _per_second(logs[0])
    no_errors: tuple[IntArray, dict[str, IntArray]] = (np.zeros(0, dtype=np.int64), {})
    rows = first.path / "requests.csv.gz"
    errors = _read_or_empty(rows, missing, read_errors, no_errors) if with_rows else no_errors
    no_series = {c: np.zeros(0) for c in TIMESERIES_COLUMNS if c != "phase"}
    timeseries = _read_or_empty(first.path / "timeseries.csv", missing, read_timeseries, no_series)
    streamed = with_rows and any(p.ttft_ms is not None for p in run.phases)
    tokens = _read_or_empty(rows, missing, read_output_tokens, None) if streamed else None
    return RunData(
        run=run,
        windows=_windows(first),
        timeseries=timeseries,
        seconds=seconds,
        percentiles=percentiles,
        distributions=_distributions(logs, [p.name for p in run.phases]),
        error_seconds=errors[0],
        errors=errors[1],
        notes=notes,
        missing=tuple(dict.fromkeys(missing)),
        output_tokens=tokens,
    )
