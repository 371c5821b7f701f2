"""Recorder: histograms per phase and interval, a standard interval log, raw rows, no loss.

Stamps are packed as the event loop packs them and handed over in batches, as in a run."""

from __future__ import annotations

import ast
import csv
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from infbench.analysis.stats import PhaseInfo, phase_summary, validity
from infbench.recorder.hdr import new_histogram, record_values
from infbench.recorder.process import RecorderProcess, RecorderSettings
from infbench.recorder.recorder import (
    ROWS_PER_PIECE,
    IntervalStats,
    Recorder,
    SourceMark,
)
from infbench.recorder.stamps import STAMP_DTYPE
from infbench.recorder.tally import PhaseTally
from infbench.results.percentile import value_at_percentile
from infbench.results.records import PhaseSummary
from infbench.results.rows import ROW_COLUMNS
from infbench.wire import ERROR_CODES, ErrorKind
from recording import InlineRecorder

MS = 1_000_000
T0 = 10**12  # the loop's monotonic clock is far from zero


class Feed(InlineRecorder):
    """A recorder fed through a StampBuffer; times in ms from the start."""

    def __init__(self, tmp_path: Path, highest_us: int = 10_000_000) -> None:
        super().__init__(["warmup", "steady"], highest_us, tmp_path)
        self.recorder.start(T0, 1.7e9)
        self.offered = self.sent = 0

    def request(
        self,
        seq: int,
        intended_ms: float,
        sent_ms: float | None,
        done_ms: float,
        *,
        first_byte_ms: float | None = None,
        status: int = 200,
        error: ErrorKind | None = None,
        bytes_out: int = 0,
    ) -> None:
        def ns(ms: float | None) -> int:
            return 0 if ms is None else T0 + round(ms * MS)

        first = first_byte_ms if first_byte_ms is not None else done_ms
        self.offered += 1
        self.sent += sent_ms is not None
        self.stamps.add(
            seq, 1, ns(intended_ms), ns(sent_ms), ns(first if sent_ms is not None else None),
            ns(done_ms), status, ERROR_CODES[error], bytes_out, 10 if status else 0,
        )  # fmt: skip

    def hand_over(self, at_ms: float) -> list[IntervalStats]:
        written = len(self.intervals)
        self.stamps.hand_over(T0 + round(at_ms * MS), self.offered, self.sent, 0)
        return self.intervals[written:]

    def close(self, end_ms: float = 1000.0) -> list[IntervalStats]:
        self.hand_over(end_ms)
        stats = self.recorder.finish(T0 + round(end_ms * MS))
        self.recorder.close()
        return stats

    @property
    def tallies(self) -> list[PhaseTally]:
        return self.recorder.tallies


def test_latency_service_lag_ttfb(tmp_path: Path) -> None:
    recorder = Feed(tmp_path)
    # intended 0, sent 2 ms, first byte 12 ms, done 22 ms
    recorder.request(0, 0, 2, 22, first_byte_ms=12, bytes_out=5)
    recorder.close()
    tally = recorder.tallies[1]
    tally.sent = recorder.sent  # the engine's count, handed over at the end
    hists = tally.histograms
    assert abs(value_at_percentile(hists["latency"], 50) - 22_000) <= 22  # 3 significant digits
    assert abs(value_at_percentile(hists["service"], 50) - 20_000) <= 20
    assert abs(value_at_percentile(hists["lag"], 50) - 2_000) <= 2
    assert abs(value_at_percentile(hists["ttfb"], 50) - 10_000) <= 10
    assert tally.ok == 1 and tally.completed == 1 and tally.sent == 1


def test_failures_go_to_their_own_histogram(tmp_path: Path) -> None:
    recorder = Feed(tmp_path)
    recorder.request(0, 0, 0, 30, status=503, error="http_5xx")
    recorder.request(1, 0, 0, 5)
    recorder.request(2, 0, None, 40, status=0, error="dropped")
    recorder.close()
    tally = recorder.tallies[1]
    assert tally.errors == {"http_5xx": 1}
    assert tally.dropped == 1
    assert tally.histograms["failed"].get_total_count() == 2
    assert tally.histograms["latency"].get_total_count() == 1
    summary = phase_summary(tally, PhaseInfo("steady", "poisson", 1.0, 3))
    assert summary.error_rate == round(2 / 3, 6)
    assert summary.achieved_rps == 2.0 and summary.goodput_rps == 1.0


def test_out_of_range_values_are_counted_not_lost(tmp_path: Path) -> None:
    recorder = Feed(tmp_path, highest_us=1_000)
    recorder.request(0, 0, 0, 50)  # 50 ms > 1 ms ceiling
    recorder.close()
    tally = recorder.tallies[1]
    assert tally.out_of_range >= 1
    assert tally.histograms["latency"].get_total_count() == 1
    assert tally.histograms["latency"].get_max_value() >= 1_000


def test_interval_log_reads_back_with_hdrh_reader(tmp_path: Path) -> None:
    recorder = Feed(tmp_path)
    for i in range(10):
        recorder.request(i, 0, 0, 10 + i)
    recorder.hand_over(1000)
    recorder.request(10, 1000, 1000, 1100)
    (stats,) = recorder.hand_over(1150)  # a second is written once the hold-back has passed
    recorder.close(2000)
    assert stats.completed == 10 and stats.latency_p50_ms is not None
    assert stats.offered == 10 and stats.sent == 10
    reader = HistogramLogReader(str(tmp_path / "latency.hlog"), HdrHistogram(1, 10_000_000, 3))
    seen: dict[str, int] = {}
    starts = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        tag = hist.get_tag()
        seen[tag] = seen.get(tag, 0) + hist.get_total_count()
        starts.append(hist.get_start_time_stamp())
    reader.close()
    assert seen["steady/latency"] == 11
    assert seen["steady/service"] == 11
    assert "warmup/latency" not in seen
    assert max(starts) - min(starts) == 1000.0  # ms since the base time


def test_raw_rows(tmp_path: Path) -> None:
    recorder = Feed(tmp_path)
    recorder.request(0, 1, 2, 9, first_byte_ms=4, bytes_out=7)
    recorder.request(1, 3, None, 30, status=0, error="dropped")
    recorder.close()
    with gzip.open(tmp_path / "requests.csv.gz", "rt") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ROW_COLUMNS
    assert rows[0]["intended_ns"] == str(MS) and rows[0]["done_ns"] == str(9 * MS)
    assert rows[0]["bytes_out"] == "7" and rows[0]["status"] == "200" and rows[0]["error"] == ""
    assert rows[1]["error"] == "dropped" and rows[1]["sent_ns"] == ""


def test_validity_names_reasons() -> None:
    phase = {
        "name": "p",
        "lag_ms": {"p99": 3.0},
        "latency_ms": {"p50": 10.0},
        "dropped": 2,
    }
    valid, reasons = validity([PhaseSummary.from_json(phase)], generator_cpu_pct=95.0)
    assert not valid
    assert any("lag p99 3.000 ms exceeds 1.000 ms" in r for r in reasons)
    assert any("2 arrivals dropped" in r for r in reasons)
    assert any("generator CPU" in r for r in reasons)
    # 5 % of a 100 ms median allows 5 ms of lag
    phase = {**phase, "latency_ms": {"p50": 100.0}, "dropped": 0}
    assert validity([PhaseSummary.from_json(phase)], generator_cpu_pct=10.0) == (True, [])


def test_bulk_recording_places_values_as_record_value_does() -> None:
    """recorder/hdr.py's vector bucketing against hdrh's own record_value, value by value."""
    rng = np.random.default_rng(7)
    for highest in (1_000, 10_000_000, 3_000_000_000):
        values = np.concatenate(
            [
                rng.integers(0, highest, 5_000),
                rng.lognormal(7, 3, 5_000).astype(np.int64).clip(0, highest),
                np.array([0, 1, 2047, 2048, 2049, highest]),
            ]
        ).clip(0, highest)  # the recorder clamps to the ceiling before recording
        one_by_one, bulk = new_histogram(highest), new_histogram(highest)
        for value in values.tolist():
            assert one_by_one.record_value(value)
        record_values(bulk, values)
        assert one_by_one.encode() == bulk.encode()
        assert (one_by_one.min_value, one_by_one.max_value) == (bulk.min_value, bulk.max_value)


def test_seconds_wait_for_every_generator(tmp_path: Path) -> None:
    """With two generators, a second is written only once both have handed over past it."""
    recorder = Recorder(["steady"], 10_000_000, tmp_path, sources=2)
    recorder.start(T0, 1.7e9)
    recorder.mark(0, SourceMark(T0 + 1200 * MS, 10, 10, 0))
    assert recorder.ready_seconds() == []
    recorder.mark(1, SourceMark(T0 + 1150 * MS, 5, 4, 1))
    (second,) = recorder.ready_seconds()
    assert (second.start_s, second.offered, second.sent, second.in_flight) == (0.0, 15, 14, 1)
    recorder.close()


def test_a_batch_is_recorded_in_pieces_with_pauses_between(tmp_path: Path) -> None:
    """The recorder process yields its core between pieces of a batch (rows, tallies, the
    seconds); the rows come out whole and in order all the same."""
    pauses: list[int] = []
    recorder = Recorder(["steady"], 10_000_000, tmp_path, pause=lambda: pauses.append(1))
    recorder.start(T0, 1.7e9)
    count = 2 * ROWS_PER_PIECE + 5
    stamps = np.zeros(count, dtype=STAMP_DTYPE)
    intended = T0 + np.arange(count, dtype=np.int64) * MS
    stamps["seq"] = np.arange(count)
    stamps["intended_ns"], stamps["sent_ns"] = intended, intended + 10_000
    stamps["first_byte_ns"] = stamps["done_ns"] = intended + 2 * MS
    stamps["status"] = 200
    recorder.add(stamps)
    assert len(pauses) == 3 + 2  # three pieces of rows, then the tally and the seconds
    recorder.finish(T0 + count * MS + MS)
    recorder.close()
    with gzip.open(tmp_path / "requests.csv.gz", "rt") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["seq"]) for row in rows] == list(range(count))
    assert recorder.tallies[0].ok == count


_STEP_ASIDE_PROBE = """
import multiprocessing as mp, os
from infbench.recorder.process import _step_aside

def probe(out):
    _step_aside()
    out.send((sorted(os.sched_getaffinity(0)), os.nice(0)))

if __name__ == "__main__":
    os.sched_setaffinity(0, {0})  # a generator pinned to core 0, as a benchmark pins it
    ctx = mp.get_context("spawn")
    read, write = ctx.Pipe(duplex=False)
    child = ctx.Process(target=probe, args=(write,))
    child.start()
    print(read.recv())
    child.join()
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity")
    or len(os.sched_getaffinity(0)) < 2
    or 0 not in os.sched_getaffinity(0),
    reason="needs Linux scheduling calls and two cores, core 0 among them",
)
def test_recorder_process_keeps_off_a_pinned_generators_core(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(_STEP_ASIDE_PROBE)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    cores, niceness = ast.literal_eval(done.stdout.strip())
    assert 0 not in cores and cores
    assert niceness >= 10


def test_recorder_process_says_when_it_reads_its_pipes(tmp_path: Path) -> None:
    """A run starts only once the recorder reads (a new interpreter takes ~0.4 s to import
    what it needs, in which the pipe would fill and block the generator)."""
    settings = RecorderSettings(phases=["a"], highest_us=1_000_000, out_dir=tmp_path)
    recorder = RecorderProcess(settings, lambda stats: None)
    try:
        assert recorder.wait_ready(timeout_s=60)
        recorder.start(0, 0.0)
        assert [tally.name for tally in recorder.finish(0, [0])] == ["a"]
    finally:
        recorder.close()


def test_a_recorder_that_cannot_start_is_not_waited_for(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    settings = RecorderSettings(phases=["a"], highest_us=1_000_000, out_dir=blocked)
    recorder = RecorderProcess(settings, lambda stats: None)
    began = time.monotonic()
    try:
        assert not recorder.wait_ready(timeout_s=120)
        assert time.monotonic() - began < 100  # it died: no waiting out the whole timeout
    finally:
        recorder.close()
