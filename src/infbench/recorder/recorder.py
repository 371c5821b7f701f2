"""Recorder: batches of stamps into HDR histograms, the interval log and raw rows (DESIGN §7).

Per phase it keeps five histograms in microseconds — latency (done − intended, successes),
service (done − sent), lag (sent − intended), ttfb (first byte − sent) and failed (latency of
failed and dropped requests) — and the same set per 1-second interval of completion time,
written to ``latency.hlog`` once every generator has passed that second. Raw rows go to
``requests.csv.gz`` batch by batch. Everything is computed on whole batches with numpy; nothing
grows with the length of the run. It runs in its own process (``process.py``), so none of this
work takes the interpreter from an event loop that is sending requests.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from infbench.recorder.hdr import new_histogram, record_values, release_histogram
from infbench.recorder.stamps import SEGMENT_METRICS, StampArray
from infbench.recorder.tally import PhaseTally
from infbench.results.hlog import IntervalLogWriter
from infbench.results.percentile import values_at_percentiles
from infbench.results.rows import ROW_COLUMNS, STREAM_COLUMNS, format_rows
from infbench.wire import ERROR_CODES, ERROR_KINDS, TOKEN_SOURCES

__all__ = ["GapSegment", "Goodput", "IntervalStats", "Recorder", "SourceMark", "tpot_ns"]

NS_PER_S = 1_000_000_000
# A second is written once every generator's clock is this far past its end: a request done
# just before a hand-over may reach the next batch (its coroutine resumes a moment later).
HOLD_NS = 100_000_000
# Rows formatted between two pauses: ~0.3 ms of work (formatting is ~1.3 µs a row).
ROWS_PER_PIECE = 256
_DROPPED = ERROR_CODES["dropped"]
_USAGE = TOKEN_SOURCES.index("usage")
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


# Values of one of SEGMENT_METRICS: phase, metric, when (ns), the values (ns).
GapSegment = tuple[int, int, int, IntArray]


def tpot_ns(rows: StampArray) -> IntArray:
    """TPOT = (last − first content chunk) / (output tokens − 1) (DESIGN §5b), of every row:
    meaningful for answers of two tokens or more, which the callers pick."""
    tokens = np.maximum(rows["output_tokens"] - 1, 1)
    tpot: IntArray = (rows["last_token_ns"] - rows["first_token_ns"]) // tokens
    return tpot


def _audit_tokens(tally: PhaseTally, rows: StampArray, ok: BoolArray) -> None:
    """The token audit's sums: ok answers whose output tokens came from the server's usage
    and that a local tokenizer counted too (``tokenizer_tokens`` ≥ 0)."""
    both = ok & (rows["tokens_source"] == _USAGE) & (rows["tokenizer_tokens"] >= 0)
    usage, local = rows["output_tokens"][both], rows["tokenizer_tokens"][both]
    tally.audited_answers += int(both.sum())
    tally.audited_usage_tokens += int(usage.sum())
    tally.audited_token_difference += int(np.abs(usage - local).sum())


@dataclass(frozen=True)
class Goodput:
    """The per-request bounds of the run's SLO (µs): a success counts toward goodput when it
    meets each that is set (DESIGN §5b: every SLO of the run)."""

    latency_us: int | None = None
    ttft_us: int | None = None
    tpot_us: int | None = None

    def met(self, rows: StampArray, ok: BoolArray) -> BoolArray:
        met = ok.copy()
        if self.latency_us is not None:
            met &= (rows["done_ns"] - rows["intended_ns"]) // 1000 <= self.latency_us
        if self.ttft_us is not None:
            met &= (rows["first_token_ns"] > 0) & (
                (rows["first_token_ns"] - rows["intended_ns"]) // 1000 <= self.ttft_us
            )
        if self.tpot_us is not None:
            met &= (rows["output_tokens"] < 2) | (tpot_ns(rows) // 1000 <= self.tpot_us)
        result: BoolArray = met
        return result


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
    in_flight: int = 0
    loop_lag_p99_ms: float | None = None  # the generator's 1 ms timer (worst of processes)


@dataclass(frozen=True)
class SourceMark:
    """A generator's clock at a hand-over and its running totals up to then."""

    now_ns: int
    offered: int
    sent: int
    in_flight: int


@dataclass
class _Second:
    """What completed within one second, by phase and metric."""

    histograms: dict[tuple[int, str], HdrHistogram] = field(default_factory=dict)
    latency: HdrHistogram | None = None  # every phase's successes, for the per-second p50/p99
    loop_lag: HdrHistogram | None = None  # every phase's loop-lag samples, for its p99
    completed: int = 0
    errors: int = 0


class Recorder:
    """Stamps from one or more generators (``sources``) into every recorded figure."""

    def __init__(
        self,
        phases: list[str],
        highest_us: int,
        out_dir: Path,
        *,
        sources: int = 1,
        goodput: Goodput = Goodput(),
        rows_header: bool = True,
        streamed: bool = False,
        pause: Callable[[], None] = lambda: None,
    ) -> None:
        self.highest_us = highest_us
        # Called between the pieces of a batch's work: the recorder process yields its core
        # there (see recorder/process.py), so no piece holds up a server sharing it for long.
        self._pause = pause
        self.tallies = [PhaseTally(name, highest_us, streamed=streamed) for name in phases]
        self._names = phases
        self._goodput = goodput
        self._streamed = streamed
        self._t0_ns = 0
        self._seconds: dict[int, _Second] = {}
        self._next_second = 0  # seconds before this one are written
        self._marks: list[SourceMark | None] = [None] * sources
        self._at_boundary: list[dict[int, SourceMark]] = [{} for _ in range(sources)]
        self._hlog_file: IO[str] = open(out_dir / "latency.hlog", "w", encoding="ascii")  # noqa: SIM115
        self._hlog: IntervalLogWriter | None = None
        self._rows: IO[str] = gzip.open(  # noqa: SIM115 - closed by close()
            out_dir / "requests.csv.gz", "wt", compresslevel=1, newline="", encoding="utf-8"
        )
        if rows_header:
            columns = ROW_COLUMNS + (STREAM_COLUMNS if streamed else ())
            self._rows.write(",".join(columns) + "\r\n")

    def start(self, t0_ns: int, start_epoch_s: float) -> None:
        """The run's start instant, once every generator agreed on it."""
        self._t0_ns = t0_ns
        self._hlog = IntervalLogWriter(self._hlog_file, start_epoch_s)

    # --- stamps ---------------------------------------------------------------------------------

    def add(self, stamps: StampArray, gaps: Sequence[GapSegment] = ()) -> None:
        """One batch: phase tallies, the open seconds' histograms and the raw rows."""
        if stamps.size:
            for at in range(0, stamps.size, ROWS_PER_PIECE):
                piece = stamps[at : at + ROWS_PER_PIECE]
                self._rows.write(format_rows(piece, self._names, self._t0_ns, self._streamed))
                self._pause()
            second = (stamps["done_ns"] - self._t0_ns) // NS_PER_S
            # A row for a second already written (a pathological straggler) joins the oldest
            # open one: the phase tallies are exact, the interval log a second off for it.
            second = np.maximum(second, self._next_second)
            for phase in np.unique(stamps["phase"]).tolist():
                rows = stamps[stamps["phase"] == phase]
                self._tally(phase, rows)
                self._pause()
                self._by_second(phase, rows, second[stamps["phase"] == phase])
                self._pause()
        for phase, metric, at_ns, values in gaps:
            name = SEGMENT_METRICS[metric]
            micros = self._values(None, values)
            histograms = self.tallies[phase].histograms
            record_values(histograms.setdefault(name, new_histogram(self.highest_us)), micros)
            at = max((at_ns - self._t0_ns) // NS_PER_S, self._next_second)
            self._record_second(self._seconds.setdefault(at, _Second()), phase, name, micros)

    def _tally(self, phase: int, rows: StampArray) -> None:
        tally = self.tallies[phase]
        error = rows["error"]
        dropped = error == _DROPPED
        ok = error == 0
        tally.completed += int((~dropped).sum())
        tally.dropped += int(dropped.sum())
        tally.ok += int(ok.sum())
        tally.bytes_in += int(rows["bytes_in"].sum())
        tally.bytes_out += int(rows["bytes_out"].sum())
        codes, counts = np.unique(error[~ok], return_counts=True)
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            if code != _DROPPED:
                tally.errors[ERROR_KINDS[code - 1]] += count
        statuses, counts = np.unique(rows["status"][rows["status"] > 0], return_counts=True)
        tally.statuses.update(dict(zip(statuses.tolist(), counts.tolist(), strict=True)))
        tally.service_ns += int((rows["done_ns"] - rows["sent_ns"])[rows["sent_ns"] > 0].sum())
        tally.ok_within_slo += int(self._goodput.met(rows, ok).sum())
        for metric, values in self._metric_values(rows, ok, tally).items():
            record_values(tally.histograms[metric], values)
        if self._streamed:
            tally.input_tokens += int(rows["input_tokens"].sum())
            tally.output_tokens += int(rows["output_tokens"].sum())
            codes, counts = np.unique(rows["tokens_source"][ok], return_counts=True)
            for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
                tally.token_sources[TOKEN_SOURCES[code] or "none"] += count
            _audit_tokens(tally, rows, ok)

    def _values(self, tally: PhaseTally | None, nanoseconds: IntArray) -> IntArray:
        """Microseconds clamped to the histogram's range; values above it are counted."""
        micros = nanoseconds // 1000
        if tally is not None:
            tally.out_of_range += int((micros > self.highest_us).sum())
        clamped: IntArray = np.clip(micros, 0, self.highest_us)
        return clamped

    def _metric_values(
        self, rows: StampArray, ok: BoolArray, tally: PhaseTally | None = None
    ) -> dict[str, IntArray]:
        """Each histogram's values from a phase's rows (out-of-range counted once, via lag
        and latency/failed: a request has only one of those two)."""
        sent = rows["sent_ns"] > 0
        first = ok & (rows["first_byte_ns"] > 0)
        since_intended = rows["done_ns"] - rows["intended_ns"]
        values = {
            "lag": self._values(tally, (rows["sent_ns"] - rows["intended_ns"])[sent]),
            "latency": self._values(tally, since_intended[ok]),
            "service": self._values(None, (rows["done_ns"] - rows["sent_ns"])[ok]),
            "ttfb": self._values(None, (rows["first_byte_ns"] - rows["sent_ns"])[first]),
            "failed": self._values(tally, since_intended[~ok]),
        }
        if self._streamed:
            values |= self._stream_values(rows, ok)
        return values

    def _stream_values(self, rows: StampArray, ok: BoolArray) -> dict[str, IntArray]:
        """TTFT (from the intended time and from the send) and TPOT of each streamed answer
        with a first token; TPOT = (last − first token) / (output tokens − 1), for ≥ 2."""
        token = ok & (rows["first_token_ns"] > 0)
        first = rows["first_token_ns"][token]
        several = token & (rows["output_tokens"] >= 2)
        return {
            "ttft": self._values(None, first - rows["intended_ns"][token]),
            "ttft_sent": self._values(None, first - rows["sent_ns"][token]),
            "tpot": self._values(None, tpot_ns(rows)[several]),
        }

    def _by_second(self, phase: int, rows: StampArray, seconds: IntArray) -> None:
        ok = rows["error"] == 0
        values = self._metric_values(rows, ok)
        token = ok & (rows["first_token_ns"] > 0)
        masks = {
            "lag": seconds[rows["sent_ns"] > 0],
            "latency": seconds[ok],
            "service": seconds[ok],
            "ttfb": seconds[ok & (rows["first_byte_ns"] > 0)],
            "failed": seconds[~ok],
            "ttft": seconds[token],
            "ttft_sent": seconds[token],
            "tpot": seconds[token & (rows["output_tokens"] >= 2)],
        }
        for second in np.unique(seconds).tolist():
            bucket = self._seconds.setdefault(second, _Second())
            in_second = seconds == second
            bucket.completed += int((in_second & (rows["error"] != _DROPPED)).sum())
            bucket.errors += int((in_second & ~ok).sum())
            if self._streamed:
                tokens = int(rows["output_tokens"][in_second].sum())
                self.tallies[phase].output_tokens_by_second[second] += tokens
            for metric, metric_values in values.items():
                self._record_second(bucket, phase, metric, metric_values[masks[metric] == second])

    def _record_second(self, bucket: _Second, phase: int, metric: str, values: IntArray) -> None:
        if values.size == 0:
            return
        hist = bucket.histograms.get((phase, metric))
        if hist is None:
            hist = bucket.histograms[(phase, metric)] = new_histogram(self.highest_us)
        record_values(hist, values)
        if metric == "latency":
            if bucket.latency is None:
                bucket.latency = new_histogram(self.highest_us)
            record_values(bucket.latency, values)
        elif metric == "loop_lag":
            if bucket.loop_lag is None:
                bucket.loop_lag = new_histogram(self.highest_us)
            record_values(bucket.loop_lag, values)

    # --- seconds --------------------------------------------------------------------------------

    def mark(self, source: int, mark: SourceMark) -> None:
        """A generator's totals at a hand-over; its totals at each second boundary it crossed
        are those of its first hand-over after that boundary (hand-overs come every 50 ms)."""
        previous = self._marks[source]
        last = (previous.now_ns - self._t0_ns) // NS_PER_S if previous else 0
        now = (mark.now_ns - self._t0_ns) // NS_PER_S
        for boundary in range(max(last, 0) + 1, now + 1):  # boundary 0, the start, is all zero
            self._at_boundary[source][boundary] = mark  # the end of second boundary - 1
        self._marks[source] = mark

    def ready_seconds(self) -> list[IntervalStats]:
        """Write every second that all generators have left behind by ``HOLD_NS``."""
        if any(mark is None for mark in self._marks):
            return []
        passed = min(m.now_ns for m in self._marks if m is not None) - HOLD_NS - self._t0_ns
        return [self._write_second(s, 1.0) for s in range(self._next_second, passed // NS_PER_S)]

    def finish(self, end_ns: int) -> list[IntervalStats]:
        """Write every second still open; the last one is as long as the run's remainder."""
        end_s = (end_ns - self._t0_ns) / 1e9
        last = max([self._next_second, *self._seconds]) if self._seconds else self._next_second
        written = []
        for second in range(self._next_second, max(last + 1, int(end_s) + 1)):
            written.append(self._write_second(second, max(min(end_s - second, 1.0), 0.0)))
        return written

    def _totals_at(self, boundary: int) -> tuple[int, int, int]:
        """(offered, sent, in flight) of all generators at the end of second ``boundary - 1``."""
        offered = sent = in_flight = 0
        if boundary <= 0:
            return 0, 0, 0
        for source, marks in enumerate(self._at_boundary):
            mark = marks.get(boundary) or self._marks[source]
            if mark is not None:
                offered, sent = offered + mark.offered, sent + mark.sent
                in_flight += mark.in_flight
        return offered, sent, in_flight

    def _write_second(self, second: int, length_s: float) -> IntervalStats:
        assert self._hlog is not None, "Recorder.start() first"
        bucket = self._seconds.pop(second, _Second())
        for (phase, metric), hist in sorted(bucket.histograms.items()):
            self._hlog.write(f"{self._names[phase]}/{metric}", float(second), length_s, hist)
            release_histogram(hist)
        self._hlog.flush()
        before, after = self._totals_at(second), self._totals_at(second + 1)
        for marks in self._at_boundary:
            marks.pop(second, None)
        self._next_second = second + 1
        p50 = p99 = None
        if bucket.latency is not None:
            p50_us, p99_us = values_at_percentiles(bucket.latency, (50.0, 99.0))
            p50, p99 = p50_us / 1000.0, p99_us / 1000.0
            release_histogram(bucket.latency)
        loop_lag = None
        if bucket.loop_lag is not None:
            loop_lag = values_at_percentiles(bucket.loop_lag, (99.0,))[0] / 1000.0
            release_histogram(bucket.loop_lag)
        return IntervalStats(
            start_s=float(second),
            offered=after[0] - before[0],
            sent=after[1] - before[1],
            completed=bucket.completed,
            errors=bucket.errors,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            in_flight=after[2],
            loop_lag_p99_ms=loop_lag,
        )

    def close(self) -> None:
        self._rows.close()
        self._hlog_file.close()
