"""Recorder: histograms per phase and interval, a standard interval log, raw rows, no loss."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from infbench.analysis.stats import PhaseInfo, phase_summary, validity
from infbench.recorder.percentile import value_at_percentile
from infbench.recorder.recorder import ROW_COLUMNS, Recorder
from infbench.wire import Outcome

MS = 1_000_000


def make(tmp_path: Path, highest_us: int = 10_000_000) -> Recorder:
    return Recorder(["warmup", "steady"], highest_us, tmp_path, t0_ns=0, start_epoch_s=1.7e9)


def ok(done_ms: float, first_byte_ms: float | None = None, status: int = 200) -> Outcome:
    first = int((first_byte_ms if first_byte_ms is not None else done_ms) * MS)
    return Outcome(done_ns=int(done_ms * MS), first_byte_ns=first, status=status, bytes_in=10)


def test_latency_service_lag_ttfb(tmp_path: Path) -> None:
    recorder = make(tmp_path)
    # intended 0, sent 2 ms, first byte 12 ms, done 22 ms
    recorder.sent(1)
    recorder.record(1, 0, 0, 2 * MS, ok(22, 12), bytes_out=5)
    recorder.flush_interval(0.0, 1.0)
    recorder.close()
    tally = recorder.tallies[1]
    hists = tally.histograms
    assert abs(value_at_percentile(hists["latency"], 50) - 22_000) <= 22  # 3 significant digits
    assert abs(value_at_percentile(hists["service"], 50) - 20_000) <= 20
    assert abs(value_at_percentile(hists["lag"], 50) - 2_000) <= 2
    assert abs(value_at_percentile(hists["ttfb"], 50) - 10_000) <= 10
    assert tally.ok == 1 and tally.completed == 1 and tally.sent == 1


def test_failures_go_to_their_own_histogram(tmp_path: Path) -> None:
    recorder = make(tmp_path)
    recorder.record(1, 0, 0, 0, Outcome(done_ns=30 * MS, status=503, error="http_5xx"), 0)
    recorder.record(1, 1, 0, 0, ok(5), 0)
    recorder.record_dropped(1, 2, 0, 40 * MS)
    recorder.close()
    tally = recorder.tallies[1]
    assert tally.errors == {"http_5xx": 1}
    assert tally.dropped == 1
    assert tally.histograms["failed"].get_total_count() == 2
    assert tally.histograms["latency"].get_total_count() == 1
    summary = phase_summary(tally, PhaseInfo("steady", "poisson", 1.0, 3))
    assert summary["error_rate"] == round(2 / 3, 6)
    assert summary["achieved_rps"] == 2.0 and summary["goodput_rps"] == 1.0


def test_out_of_range_values_are_counted_not_lost(tmp_path: Path) -> None:
    recorder = make(tmp_path, highest_us=1_000)
    recorder.record(1, 0, 0, 0, ok(50), 0)  # 50 ms > 1 ms ceiling
    recorder.close()
    tally = recorder.tallies[1]
    assert tally.out_of_range >= 1
    assert tally.histograms["latency"].get_total_count() == 1
    assert tally.histograms["latency"].get_max_value() >= 1_000


def test_interval_log_reads_back_with_hdrh_reader(tmp_path: Path) -> None:
    recorder = make(tmp_path)
    for i in range(10):
        recorder.record(1, i, 0, 0, ok(10 + i), 0)
    stats = recorder.flush_interval(0.0, 1.0)
    recorder.record(1, 10, 0, 0, ok(100), 0)
    recorder.flush_interval(1.0, 1.0)
    recorder.close()
    assert stats.completed == 10 and stats.latency_p50_ms is not None
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
    recorder = make(tmp_path)
    recorder.record(1, 0, 1 * MS, 2 * MS, ok(9, 4), bytes_out=7)
    recorder.record_dropped(1, 1, 3 * MS, 30 * MS)
    recorder.flush_interval(0.0, 1.0)
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
    valid, reasons = validity([phase], generator_cpu_pct=95.0)
    assert not valid
    assert any("lag p99 3.000 ms exceeds 1.000 ms" in r for r in reasons)
    assert any("2 arrivals dropped" in r for r in reasons)
    assert any("generator CPU" in r for r in reasons)
    # 5 % of a 100 ms median allows 5 ms of lag
    phase = {**phase, "latency_ms": {"p50": 100.0}, "dropped": 0}
    assert validity([phase], generator_cpu_pct=10.0) == (True, [])
