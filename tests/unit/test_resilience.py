"""Resilience figures from synthetic rows: exact windows, recovery, and the plot data."""

from __future__ import annotations

import numpy as np
import pytest

from infbench.analysis.resilience import (
    Rows,
    analyse_fault,
    resilience_plot_data,
    resilience_section,
)
from infbench.results.records import RunRecord

RATE = 100  # completions per second in the synthetic runs


def steady(start: float, end: float, latency_ms: float, failed: bool = False) -> list[tuple]:
    times = np.arange(start, end, 1 / RATE)
    return [(t, latency_ms, failed) for t in times]


def rows(*parts: list[tuple]) -> Rows:
    merged = [row for part in parts for row in part]
    return Rows.of(*zip(*merged, strict=True))


def test_an_outage_with_errors_then_recovery() -> None:
    data = rows(
        steady(0, 10, 2.0),
        steady(10.05, 11.0, 1.0, failed=True),  # connection refused: fast failures
        steady(11.0, 20, 2.0),
    )
    result = analyse_fault(data, fault_s=10.0, boundary_s=20.0)
    assert result["baseline_p50_ms"] == 2.0 and result["threshold_ms"] == 3.0  # 1 ms floor
    assert result["first_error_after_s"] == pytest.approx(0.05, abs=1e-3)
    assert result["error_window_s"] == pytest.approx(0.94, abs=0.011)
    assert result["failed_requests"] == 95
    assert result["recovered"] and result["recovery_s"] == pytest.approx(0.99, abs=0.011)


def test_slow_answers_without_errors_recover_when_p50_is_back() -> None:
    data = rows(steady(0, 10, 50.0), steady(10, 13, 500.0), steady(13, 20, 52.0))
    result = analyse_fault(data, fault_s=10.0, boundary_s=20.0)
    assert result["first_error_after_s"] is None and result["failed_requests"] == 0
    assert result["threshold_ms"] == pytest.approx(55.0)  # 10 % above 50 ms
    assert result["recovered"] and result["recovery_s"] == pytest.approx(3.0, abs=0.011)


def test_latency_that_stays_high_never_recovers() -> None:
    data = rows(steady(0, 10, 50.0), steady(10, 20, 60.0))
    result = analyse_fault(data, fault_s=10.0, boundary_s=20.0)
    assert not result["recovered"] and result["recovery_s"] is None


def test_one_good_second_between_bad_ones_is_not_recovery() -> None:
    data = rows(
        steady(0, 10, 10.0),
        steady(10, 12, 100.0),
        steady(12, 13, 10.0),
        steady(13, 14, 100.0),
        steady(14, 20, 10.0),
    )
    assert analyse_fault(data, 10.0, 20.0)["recovery_s"] == pytest.approx(4.0, abs=0.011)


def test_a_stray_error_long_after_is_not_part_of_the_window() -> None:
    data = rows(
        steady(0, 10, 2.0),
        steady(10, 10.5, 1.0, failed=True),
        steady(10.5, 15, 2.0),
        [(15.0, 1.0, True)],
        steady(15.01, 20, 2.0),
    )
    result = analyse_fault(data, 10.0, 20.0)
    assert result["error_window"][1] < 10.6 and result["failed_requests"] == 50


def test_an_outage_without_completions_keeps_the_window_open() -> None:
    """Requests hanging until their timeout complete late, all failed: one window."""
    data = rows(steady(0, 10, 2.0), steady(12.0, 12.5, 2000.0, failed=True), steady(13, 20, 2.0))
    result = analyse_fault(data, 10.0, 20.0)
    assert result["first_error_after_s"] == pytest.approx(2.0)
    assert result["error_window_s"] == pytest.approx(0.49, abs=0.011)


def test_without_traffic_before_the_fault_there_is_no_baseline() -> None:
    data = rows(steady(0.0, 5, 2.0))
    result = analyse_fault(data, fault_s=0.0, boundary_s=5.0)
    assert result["baseline_p50_ms"] is None and result["recovery_s"] is None


def test_the_section_bounds_each_fault_by_the_next_and_names_the_phase() -> None:
    data = rows(steady(0, 20, 2.0), steady(12, 12.2, 1.0, failed=True))
    faults = [
        {"index": 0, "action": "pause", "time_s": 5.0, "end_s": 6.0},
        {"index": 1, "action": "kill_server", "time_s": 12.0},
        {"index": 2, "action": "restart", "time_s": None},
    ]
    windows = {"steady": [0.0, 10.0], "ramp": [10.0, 20.0]}
    section = resilience_section(faults, [], data, 20.0, windows)
    first, second, third = section["faults"]
    assert first["phase"] == "steady" and first["failed_requests"] == 0  # bounded at 12 s
    assert second["phase"] == "ramp" and second["failed_requests"] == 20
    assert "phase" not in third
    assert section["method"]["tolerance"] == 0.1


def test_plot_data_comes_from_run_json_alone() -> None:
    data = rows(steady(0, 20, 2.0), steady(12, 12.5, 1.0, failed=True))
    faults = [{"index": 0, "action": "kill_server", "time_s": 12.0, "end_s": None}]
    restarts = [{"time_s": 12.03, "ready_s": 14.0}, {"time_s": 16.0, "ready_s": None}]
    run = RunRecord.from_json({"resilience": resilience_section(faults, restarts, data, 20.0, {})})
    plot = resilience_plot_data(run.resilience)
    assert plot is not None
    (marks,) = plot.faults
    assert marks.label == "kill_server at 12.0 s" and marks.time_s == 12.0
    assert marks.error_window is not None and marks.error_window[0] == pytest.approx(12.0)
    assert marks.recovered_at_s is not None and marks.recovered_at_s >= marks.error_window[1]
    assert marks.baseline_p50_ms == 2.0 and marks.threshold_ms == 3.0
    assert plot.restarts == ((12.03, 14.0), (16.0, None))
    assert resilience_plot_data(RunRecord.from_json({}).resilience) is None
    bad = RunRecord.from_json({"resilience": {"faults": [{"time_s": "bad"}]}})
    assert resilience_plot_data(bad.resilience) == type(plot)((), ())
