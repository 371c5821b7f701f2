"""run.json records: what is read is written back, key for key, and unknown keys survive."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infbench.errors import ResultFormatError
from infbench.results.records import PhaseSummary, RunRecord
from infbench.results.rundir import load_run

GOLDEN = Path(__file__).parent.parent / "golden"
FIGURES = {"p50": 1.0, "p90": 2.0, "p95": 3.0, "p99": 4.0, "p999": 5.0, "max": 6.0, "mean": 1.5}
PHASE: dict[str, Any] = {
    "name": "steady",
    "process": "poisson",
    "duration_s": 2.0,
    "scheduled": 10,
    "sent": 10,
    "completed": 10,
    "ok": 9,
    "dropped": 0,
    "errors": {"http_5xx": 1},
    "error_rate": 0.1,
    "status_codes": {"200": 9, "503": 1},
    "offered_rps": 5.0,
    "achieved_rps": 5.0,
    "goodput_rps": 4.5,
    "latency_ms": FIGURES,
    "service_ms": {**FIGURES, "p50": None},
    "lag_ms": {"p50": 0.1, "p99": 0.2, "max": 0.3},
    "ttfb_ms": {"p50": None, "p99": None},
    "failed_ms": {"p50": 1.0, "p99": 1.0, "max": 1.0},
    "bytes_in": 0,
    "bytes_out": 0,
    "out_of_range": 0,
    "future_ms": {"p50": 9.0},  # a key of a later version: kept
}
SERVER_PHASE = dict.fromkeys(
    [
        "requests_by_status",
        "duration_p50_ms",
        "duration_p99_ms",
        "mean_batch_size",
        "in_progress_max",
        "cpu_pct_mean",
        "cpu_pct_max",
        "rss_mb_max",
        "generator_cpu_pct_mean",
        "generator_cpu_pct_max",
    ]
)
RUN: dict[str, Any] = {
    "format_version": 1,
    "status": "complete",
    "valid": True,
    "invalid_reasons": [],
    "infbench_version": "0.1.0",
    "command": ["infbench", "run", "s.yaml"],
    "scenario": {"name": "s", "slo": {"p99": "1s"}, "request": {"timeout": 5.0}},
    "scenario_path": "s.yaml",
    "scenario_sha256": "a" * 64,
    "schedule_sha256": "b" * 64,
    "seed": 1,
    "environment": {
        "host": "h",
        "os": "Linux",
        "cpu_model": "cpu",
        "cores": 2,
        "python": "3.11.7",
        "infbench": "0.1.0",
        "versions": {"numpy": "2.0.0", "bentoml": None},
        "git_sha": None,
    },
    "target": {
        "kind": "url",
        "base_url": "http://127.0.0.1:1",
        "command": None,
        "pids": [],
        "startup_s": None,
        "metrics_url": None,
        "config": {},
    },
    "timings": {
        "started_utc": "2024-01-01T00:00:00+00:00",
        "start_epoch_s": 1704067200.0,
        "duration_s": 2.5,
        "phase_windows_s": {"warmup": [0.0, 0.5], "steady": [0.5, 2.5]},
    },
    "phases": [PHASE],
    "warmup": None,
    "errors_by_kind": {"http_5xx": 1},
    "server": {
        "metrics_url": None,
        "interval_s": 1.0,
        "scrapes": {"ok": 0},
        "phases": {"steady": {**SERVER_PHASE, "cpu_pct_mean": 3.0, "rss_mb_max": 40.0}},
        "generator": {"cpu_pct_mean": 10.0},
    },
    "generator": {
        "cpu_pct": 20.0,
        "busy_cpu_pct": 15.0,
        "spin_s": 0.0,
        "rss_mb": 50.0,
        "processes": 2,
        "per_process": [{"cpu_pct": 20.0}, {"cpu_pct": 19.0}],
    },
    "slo": [{"metric": "p99", "threshold": "1s", "phase": "steady", "value": 4.0, "passed": True}],
    "warnings": ["w"],
    "resilience": {"faults": [{"index": 0, "action": "pause", "time_s": 1.0}], "restarts": []},
    "result_dir": "/tmp/r",
    "pid": 1,
    "added_later": {"any": ["thing"]},  # a key of a later version: kept
}


def test_a_run_reads_and_writes_back_key_for_key() -> None:
    record = RunRecord.from_json(RUN)
    assert json.dumps(record.to_json()) == json.dumps(RUN)  # same keys, same order, same values
    assert record.phases[0].latency_ms.p99 == 4.0
    assert record.environment is not None and record.environment.host == "h"
    assert record.timings.phase_windows_s == {"warmup": (0.0, 0.5), "steady": (0.5, 2.5)}
    assert record.server_phase("steady") is not None
    assert record.scenario.request_timeout_s == 5.0 and record.scenario.name == "s"
    assert record.resilience is not None and record.resilience.faults[0]["action"] == "pause"
    assert record.phases[0].extra == {"future_ms": {"p50": 9.0}}


def test_a_rewritten_aggregate_keeps_unknown_keys() -> None:
    aggregate = replace(RunRecord.from_json(RUN), repetitions=("run-1", "run-2"), server=None)
    data = aggregate.to_json()
    assert data["added_later"] == {"any": ["thing"]} and data["repetitions"] == ["run-1", "run-2"]
    assert data["phases"][0]["future_ms"] == {"p50": 9.0}


@pytest.mark.parametrize("name", ["base", "cand", "cand-slow", "rep-base", "rep-base/run-1"])
def test_golden_phases_round_trip(name: str) -> None:
    data = json.loads((GOLDEN / name / "run.json").read_text())
    record = load_run(GOLDEN / name).record
    for phase, stored in zip(record.phases, data["phases"], strict=True):
        assert json.dumps(phase.to_json()) == json.dumps(stored)


def test_reading_is_lenient_about_old_or_odd_sections() -> None:
    record = RunRecord.from_json({"format_version": 1, "phases": [], "environment": 3, "slo": 1})
    assert record.environment is None and record.slo == () and record.timings.duration_s is None
    phase = PhaseSummary.from_json({"name": "p", "latency_ms": {"p99": 2.0}})
    assert phase.latency_ms.p99 == 2.0 and phase.service_ms.p50 is None and phase.failed_ms is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"timings": {"phase_windows_s": {"steady": [1]}}}, "phase_windows_s.steady is not"),
        ({"repetitions": ["../x"]}, "`repetitions` must be a non-empty list"),
        ({"repetitions": []}, "`repetitions` must be a non-empty list"),
    ],
)
def test_load_run_names_the_file_for_unusable_values(
    tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    (tmp_path / "run.json").write_text(json.dumps({**RUN, **edit}))
    with pytest.raises(ResultFormatError, match=message) as caught:
        load_run(tmp_path)
    assert str(tmp_path / "run.json") in str(caught.value)
