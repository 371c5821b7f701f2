"""Recorder: every request's outcome into HDR histograms and the raw-row stream (DESIGN §7).

Per phase it keeps five histograms in microseconds — latency (done − intended, successes),
service (done − sent), lag (sent − intended), ttfb (first byte − sent) and failed (latency of
failed and dropped requests) — and the same set per 1-second interval, flushed each second to
``latency.hlog``. Raw rows stream to ``requests.csv.gz`` from a writer thread. Nothing grows
with the length of the run.
"""

from __future__ import annotations

import csv
import gzip
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hdrh.histogram import HdrHistogram

from infbench.recorder.percentile import values_at_percentiles
from infbench.wire import Outcome

__all__ = [
    "METRICS",
    "ROW_COLUMNS",
    "IntervalLogWriter",
    "IntervalSnapshot",
    "IntervalStats",
    "PhaseTally",
    "Recorder",
    "new_histogram",
    "release_histogram",
]

METRICS = ("latency", "service", "lag", "ttfb", "failed")
ROW_COLUMNS = (
    "seq",
    "phase",
    "intended_ns",
    "sent_ns",
    "first_byte_ns",
    "done_ns",
    "status",
    "error",
    "bytes_out",
    "bytes_in",
)
SIGNIFICANT_DIGITS = 3
Row = tuple[int, str, int, int | str, int | str, int, int, str, int, int]


def release_histogram(hist: HdrHistogram) -> None:
    """Break the histogram <-> encoder reference cycle of a histogram no longer needed.

    The garbage collector is off while a run measures, so a cycle is never freed: without
    this, the interval histograms made every second grew memory by about 1 MB a second.
    """
    hist.encoder.histogram = None


def new_histogram(highest_us: int) -> HdrHistogram:
    """1 µs .. highest_us at 3 significant digits (DESIGN §7)."""
    return HdrHistogram(1, highest_us, SIGNIFICANT_DIGITS)


@dataclass
class PhaseTally:
    """Counts and histograms of one phase; what the phase summary is computed from."""

    name: str
    highest_us: int
    sent: int = 0
    completed: int = 0
    ok: int = 0
    ok_within_slo: int = 0
    dropped: int = 0
    out_of_range: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    histograms: dict[str, HdrHistogram] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.histograms = {metric: new_histogram(self.highest_us) for metric in METRICS}


@dataclass(frozen=True)
class IntervalSnapshot:
    """One interval's raw data, taken from the recorder in the loop, written elsewhere."""

    start_s: float
    length_s: float
    histograms: dict[tuple[int, str], HdrHistogram]
    rows: list[Row]
    counts: Counter[str]


@dataclass(frozen=True)
class IntervalStats:
    """One second of the run, for timeseries.csv and the live display."""

    start_s: float
    offered: int
    sent: int
    completed: int
    errors: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


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


class _RowWriter:
    """Streams raw rows to requests.csv.gz from a thread, in small chunks.

    Formatting rows holds the GIL; chunks of a few hundred rows keep each hold well under a
    millisecond, so the event loop's send timing barely notices the writer.
    """

    CHUNK = 256

    def __init__(self, path: Path, header: bool) -> None:
        # Kept open for the whole run; closed by close().
        self._file = gzip.open(path, "wt", compresslevel=1, newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._file)
        if header:
            self._csv.writerow(ROW_COLUMNS)
        self._queue: queue.SimpleQueue[list[Row] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="infbench-rows", daemon=True)
        self._thread.start()

    def put(self, rows: list[Row]) -> None:
        if rows:
            self._queue.put(rows)

    def _drain(self) -> None:
        while (rows := self._queue.get()) is not None:
            for start in range(0, len(rows), self.CHUNK):
                self._csv.writerows(rows[start : start + self.CHUNK])

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()


class Recorder:
    """Collects outcomes during a run; ``flush_interval`` runs once a second."""

    def __init__(
        self,
        phases: list[str],
        highest_us: int,
        out_dir: Path,
        t0_ns: int | None = None,
        start_epoch_s: float | None = None,
        goodput_threshold_us: int | None = None,
        rows_header: bool = True,
    ) -> None:
        self.highest_us = highest_us
        self.t0_ns = 0
        self.tallies = [PhaseTally(name, highest_us) for name in phases]
        self._names = phases
        self._goodput_us = goodput_threshold_us
        self._interval: dict[tuple[int, str], HdrHistogram] = {}
        self._counts = Counter[str]()
        self._rows: list[Row] = []
        self._hlog_file: IO[str] = open(out_dir / "latency.hlog", "w", encoding="ascii")  # noqa: SIM115
        self._hlog: IntervalLogWriter | None = None
        self._row_writer = _RowWriter(out_dir / "requests.csv.gz", rows_header)
        if t0_ns is not None and start_epoch_s is not None:
            self.start(t0_ns, start_epoch_s)

    def start(self, t0_ns: int, start_epoch_s: float) -> None:
        """Fix the run's start instant; the engine calls it once the sender is ready."""
        self.t0_ns = t0_ns
        self._hlog = IntervalLogWriter(self._hlog_file, start_epoch_s)

    # --- hot path -----------------------------------------------------------------------------

    def _record(self, phase: int, tally: PhaseTally, metric: str, value_us: int) -> None:
        if value_us > self.highest_us:
            tally.out_of_range += 1
            value_us = self.highest_us  # kept at the ceiling so percentiles stay conservative
        elif value_us < 0:
            value_us = 0
        tally.histograms[metric].record_value(value_us)
        key = (phase, metric)
        hist = self._interval.get(key)
        if hist is None:
            hist = self._interval[key] = new_histogram(self.highest_us)
        hist.record_value(value_us)

    def offered(self) -> None:
        """An arrival became due (counted per second as the offered load)."""
        self._counts["offered"] += 1

    def record(
        self, phase: int, seq: int, intended_ns: int, sent_ns: int, outcome: Outcome, bytes_out: int
    ) -> None:
        tally = self.tallies[phase]
        tally.completed += 1
        tally.bytes_in += outcome.bytes_in
        tally.bytes_out += bytes_out
        if outcome.status:
            tally.statuses[outcome.status] += 1
        latency_us = (outcome.done_ns - intended_ns) // 1000
        self._record(phase, tally, "lag", (sent_ns - intended_ns) // 1000)
        if outcome.error is None:
            tally.ok += 1
            if self._goodput_us is None or latency_us <= self._goodput_us:
                tally.ok_within_slo += 1
            self._record(phase, tally, "latency", latency_us)
            self._record(phase, tally, "service", (outcome.done_ns - sent_ns) // 1000)
            if outcome.first_byte_ns:
                self._record(phase, tally, "ttfb", (outcome.first_byte_ns - sent_ns) // 1000)
        else:
            tally.errors[outcome.error] += 1
            self._counts["errors"] += 1
            self._record(phase, tally, "failed", latency_us)
        self._counts["completed"] += 1
        t0 = self.t0_ns
        self._rows.append(
            (
                seq,
                self._names[phase],
                intended_ns - t0,
                sent_ns - t0,
                outcome.first_byte_ns - t0 if outcome.first_byte_ns else "",
                outcome.done_ns - t0,
                outcome.status,
                outcome.error or "",
                bytes_out,
                outcome.bytes_in,
            )
        )

    def sent(self, phase: int) -> None:
        self.tallies[phase].sent += 1
        self._counts["sent"] += 1

    def record_dropped(self, phase: int, seq: int, intended_ns: int, now_ns: int) -> None:
        """An arrival that never got a connection within the timeout: counted, never ignored."""
        tally = self.tallies[phase]
        tally.dropped += 1
        self._counts["errors"] += 1
        self._record(phase, tally, "failed", (now_ns - intended_ns) // 1000)
        t0 = self.t0_ns
        self._rows.append(
            (seq, self._names[phase], intended_ns - t0, "", "", now_ns - t0, 0, "dropped", 0, 0)
        )

    # --- once a second ---------------------------------------------------------------------------

    def take_interval(self, start_s: float, length_s: float) -> IntervalSnapshot:
        """Hand over this interval's data and start the next (cheap: runs in the event loop)."""
        snapshot = IntervalSnapshot(start_s, length_s, self._interval, self._rows, self._counts)
        self._interval, self._rows, self._counts = {}, [], Counter()
        return snapshot

    def write_interval(self, snapshot: IntervalSnapshot) -> IntervalStats:
        """Encode and write an interval; its figures for the time series.

        Encoding and percentile walks cost milliseconds of pure Python: the engine runs this in
        its hook thread, never in the event loop, so arrivals due at a second's boundary are
        not held up.
        """
        assert self._hlog is not None, "Recorder.start() first"
        merged: HdrHistogram | None = None
        for (phase, metric), hist in sorted(snapshot.histograms.items()):
            if hist.get_total_count() == 0:
                continue
            tag = f"{self._names[phase]}/{metric}"
            self._hlog.write(tag, snapshot.start_s, snapshot.length_s, hist)
            if metric == "latency":
                if merged is None:
                    merged = new_histogram(self.highest_us)
                merged.add(hist)
        self._hlog.flush()
        for hist in snapshot.histograms.values():
            release_histogram(hist)
        self._row_writer.put(snapshot.rows)
        counts = snapshot.counts
        p50 = p99 = None
        if merged is not None and merged.get_total_count():
            p50_us, p99_us = values_at_percentiles(merged, (50.0, 99.0))
            p50, p99 = p50_us / 1000.0, p99_us / 1000.0
        if merged is not None:
            release_histogram(merged)
        return IntervalStats(
            start_s=snapshot.start_s,
            offered=counts["offered"],
            sent=counts["sent"],
            completed=counts["completed"],
            errors=counts["errors"],
            latency_p50_ms=p50,
            latency_p99_ms=p99,
        )

    def flush_interval(self, start_s: float, length_s: float) -> IntervalStats:
        """Take and write an interval in one go (for callers without an event loop to spare)."""
        return self.write_interval(self.take_interval(start_s, length_s))

    def close(self) -> None:
        self._row_writer.close()
        self._hlog_file.close()
