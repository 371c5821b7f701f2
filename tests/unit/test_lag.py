"""The cause of a send lag, told apart from synthetic stamps (analysis/lag.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from infbench.analysis.lag import diagnose_lag
from infbench.results.rows import ROW_COLUMNS

MS = 1_000_000


def write_rows(path: Path, requests: list[tuple[float, float]]) -> Path:
    """(intended ms, sent ms) per request, as raw rows of one phase."""
    lines = [",".join(ROW_COLUMNS)]
    for seq, (intended, sent) in enumerate(requests):
        done = sent + 1
        lines.append(f"{seq},p,{intended * MS:.0f},{sent * MS:.0f},,{done * MS:.0f},200,,0,2")
    path.write_bytes(gzip.compress(("\r\n".join(lines) + "\r\n").encode()))
    return path


def steady(
    start_ms: float, count: int, gap_ms: float, lag_ms: float = 0.05
) -> list[tuple[float, float]]:
    return [(start_ms + i * gap_ms, start_ms + i * gap_ms + lag_ms) for i in range(count)]


def test_a_frozen_process_is_a_stall(tmp_path: Path) -> None:
    # 1 request per ms; the process freezes from 100 to 110 ms, then catches up at once.
    before = steady(0, 100, 1.0)
    caught_up = [(100 + i, 110 + 0.01 * i) for i in range(10)]
    after = steady(111, 100, 1.0)
    cause = diagnose_lag(write_rows(tmp_path / "r.csv.gz", before + caught_up + after), "p", 1.0)
    assert cause is not None and cause.cause == "stall"
    assert cause.late == 10  # even the last, due at 109 ms, left at 110.09 ms
    assert cause.worst_ms == pytest.approx(10.0, abs=0.01)
    assert "did not run for up to 10.0 ms" in cause.advice
    assert "real-time" not in cause.advice  # it had the priority: the hint would not help
    normal = diagnose_lag(tmp_path / "r.csv.gz", "p", 1.0, realtime=False)
    assert normal is not None and "client.priority: auto" in normal.advice
    assert "ulimit -r 1" in normal.advice


def test_arrivals_due_together_and_sent_one_by_one_are_burst_serialisation(
    tmp_path: Path,
) -> None:
    # Every 50 ms, 20 arrivals due at the same instant, each sent 0.15 ms after the one before.
    requests = [
        (burst * 50.0, burst * 50.0 + 0.15 * (k + 1)) for burst in range(10) for k in range(20)
    ]
    cause = diagnose_lag(write_rows(tmp_path / "r.csv.gz", requests), "p", 1.0)
    assert cause is not None and cause.cause == "burst"
    assert cause.late == 10 * 14  # the 7th to 20th of each burst are more than 1 ms late
    assert "client.sender: fast" in cause.advice
    on_fast = diagnose_lag(tmp_path / "r.csv.gz", "p", 1.0, sender="fast")
    assert on_fast is not None and on_fast.cause == "burst"
    assert "client.sender" not in on_fast.advice  # it was fast already
    assert "client.processes" in on_fast.advice


def test_a_fast_constant_rate_is_not_a_burst(tmp_path: Path) -> None:
    # 20,000/s (due every 0.05 ms, closer than BURST_NS), sent every 0.06 ms: the generator
    # falls behind a rate; nothing was due at one instant.
    requests = [(0.05 * i, 0.06 * i) for i in range(400)]
    cause = diagnose_lag(write_rows(tmp_path / "r.csv.gz", requests), "p", 1.0)
    assert cause is not None and cause.cause == "saturation"


def test_a_generator_that_keeps_sending_but_falls_behind_is_saturated(tmp_path: Path) -> None:
    # Due every 0.1 ms, sent every 0.12 ms: busy all the time, further behind each time.
    requests = [(0.1 * i, 0.12 * i) for i in range(200)]
    cause = diagnose_lag(write_rows(tmp_path / "r.csv.gz", requests), "p", 1.0)
    assert cause is not None and cause.cause == "saturation"
    assert "lower the rate" in cause.advice


def test_nothing_late_means_no_cause(tmp_path: Path) -> None:
    assert diagnose_lag(write_rows(tmp_path / "r.csv.gz", steady(0, 50, 1.0)), "p", 1.0) is None
