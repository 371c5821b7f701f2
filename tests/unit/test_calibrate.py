"""Calibration without a clock or a network: peak rates, the capacity search, the run warning."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from infbench.commands import calibrate
from infbench.commands.calibrate import (
    CalibrationSettings,
    Level,
    calibration_path,
    capacity_warning,
    search_capacity,
    warn_if_over_capacity,
)
from infbench.scenario.model import Scenario, Workload
from infbench.schedule.arrivals import build_schedule
from infbench.schedule.peak import peak_rate


def _workload(*arrivals: dict[str, Any], warmup: Any = None) -> Workload:
    phases = [
        {"name": f"p{i}", "duration": 2, "arrival": arrival} for i, arrival in enumerate(arrivals)
    ]
    return Workload.model_validate({"phases": phases, "warmup": warmup})


def _peak(workload: Workload, base: Path = Path(".")) -> float | None:
    return peak_rate(workload, build_schedule(workload, base))


@pytest.mark.parametrize(
    ("arrival", "expected"),
    [
        ({"process": "constant", "rate": 100}, 100),
        ({"process": "poisson", "rate": "600/m"}, 10),
        ({"process": "gamma", "rate": 50, "cv": 3}, 50),
        ({"process": "onoff", "rate_on": 80, "rate_off": 5, "on": 1, "off": 1}, 80),
        ({"process": "ramp", "from": 10, "to": 300}, 300),
        ({"process": "ramp", "from": 400, "to": 0}, 400),
        ({"process": "steps", "rates": [10, 70, 20], "step": 0.5}, 70),
    ],
)
def test_peak_rate_of_each_process(arrival: dict[str, Any], expected: float) -> None:
    assert _peak(_workload(arrival)) == pytest.approx(expected)


def test_peak_rate_is_the_max_over_phases_and_an_explicit_warmup() -> None:
    workload = _workload(
        {"process": "constant", "rate": 10},
        {"process": "ramp", "from": 5, "to": 40},
        {"process": "closed", "concurrency": 4},
    )
    assert _peak(workload) == 40
    warm = {"duration": 1, "arrival": {"process": "poisson", "rate": 900}}
    assert _peak(_workload({"process": "constant", "rate": 10}, warmup=warm)) == 900


def test_closed_loop_only_has_no_peak() -> None:
    assert _peak(_workload({"process": "closed", "concurrency": 8})) is None


def test_trace_peak_is_the_busiest_sliding_second(tmp_path: Path) -> None:
    times = [0.0, 0.5, 0.9, 1.0, 1.2, 5.0, 5.1]  # [0.5, 1.5) holds 0.5, 0.9, 1.0 and 1.2
    (tmp_path / "t.csv").write_text("timestamp\n" + "\n".join(map(str, times)) + "\n")
    workload = _workload({"process": "trace", "path": "t.csv"})
    assert _peak(workload, tmp_path) == 4
    scaled = _workload({"process": "trace", "path": "t.csv", "scale": 10})
    assert _peak(scaled, tmp_path) == 1


# --- the search ---------------------------------------------------------------------------------


class FakeMachine:
    """Keeps up below ``capacity``; each level takes ``cost`` seconds of a fake clock."""

    def __init__(self, capacity: float, cost: float = 1.0, stalls: int = 0) -> None:
        self.capacity, self.cost, self.stalls = capacity, cost, stalls
        self.now = 0.0
        self.rates: list[float] = []

    def clock(self) -> float:
        return self.now

    def measure(self, rate: float) -> Level:
        self.now += self.cost
        self.rates.append(rate)
        stalled = self.stalls > 0 and rate < self.capacity
        self.stalls -= stalled
        passed = rate <= self.capacity and not stalled
        lag = 0.1 if passed else (2.0 if stalled else 500.0)
        return Level(rate, passed, 100, 100, 0, 0.05, lag, 20.0, self.cost, "" if passed else "lag")


def test_search_brackets_then_bisects_to_the_precision() -> None:
    machine = FakeMachine(capacity=12_345)
    settings = CalibrationSettings(precision=0.05, budget_s=1000)
    levels, stopped_by = search_capacity(machine.measure, settings, machine.clock)
    assert stopped_by == "precision"
    assert machine.rates[:5] == [1000, 2000, 4000, 8000, 16000]
    best = max(level.rate for level in levels if level.passed)
    worst = min(level.rate for level in levels if not level.passed)
    assert best <= 12_345 < worst and worst / best - 1 <= 0.05


def test_search_halves_while_nothing_passes_and_stops_at_the_floor() -> None:
    machine = FakeMachine(capacity=10)
    levels, stopped_by = search_capacity(
        machine.measure, CalibrationSettings(min_rate=50, budget_s=1000), machine.clock
    )
    assert stopped_by == "floor" and not any(level.passed for level in levels)
    assert machine.rates == [1000, 500, 250, 125, 62.5, 50]


def test_search_stops_at_the_ceiling_and_within_the_budget() -> None:
    machine = FakeMachine(capacity=1e9)
    _, stopped_by = search_capacity(
        machine.measure, CalibrationSettings(max_rate=8000, budget_s=1000), machine.clock
    )
    assert stopped_by == "ceiling" and machine.rates == [1000, 2000, 4000, 8000]
    slow = FakeMachine(capacity=1e9, cost=4.0)
    levels, stopped_by = search_capacity(slow.measure, CalibrationSettings(budget_s=10), slow.clock)
    assert stopped_by == "budget" and len(levels) == 2  # a third would end past 10 s
    once = FakeMachine(capacity=1e9, cost=4.0)
    assert len(search_capacity(once.measure, CalibrationSettings(budget_s=0), once.clock)[0]) == 1


def test_a_marginal_failure_is_measured_once_more() -> None:
    machine = FakeMachine(capacity=5000, stalls=1)  # the first level stalls by a little
    levels, _ = search_capacity(machine.measure, CalibrationSettings(budget_s=1000), machine.clock)
    assert machine.rates[:3] == [1000, 1000, 2000]
    assert not levels[0].passed and levels[1].passed


# --- where the calibration lives, and the warning -----------------------------------------------


def test_calibration_path_follows_the_environment(tmp_path: Path) -> None:
    assert calibration_path({"INFBENCH_CALIBRATION": "/x/c.json"}) == Path("/x/c.json")
    assert calibration_path({"XDG_CACHE_HOME": "/cache"}) == Path(
        "/cache/infbench/calibration.json"
    )
    assert calibration_path({}).parts[-3:] == (".cache", "infbench", "calibration.json")


def _scenario(sender: str = "aiohttp", processes: int | str = 1, rate: float = 500) -> Scenario:
    return Scenario.model_validate(
        {
            "version": 1,
            "name": "s",
            "target": {"kind": "url", "url": "http://127.0.0.1:1"},
            "client": {"sender": sender, "processes": processes},
            "workload": {
                "phases": [{"name": "a", "duration": 1, "arrival": {"process": "ramp",
                                                                      "from": 1, "to": rate}}]
            },
        }
    )  # fmt: skip


def _calibration(**capacities: float | None) -> dict[str, Any]:
    return {
        "format_version": 1,
        "created_utc": "2030-01-01T00:00:00+00:00",
        "senders": {name: {"capacity_rps": cap} for name, cap in capacities.items()},
    }


def _warning(scenario: Scenario, calibration: dict[str, Any]) -> str | None:
    schedule = build_schedule(scenario.workload, Path("."))
    return capacity_warning(scenario, schedule, calibration)


def test_warns_above_the_capacity_of_sender_times_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calibrate.os, "cpu_count", lambda: 8)
    message = _warning(_scenario(rate=5000), _calibration(aiohttp=3000))
    assert message is not None
    assert "aiohttp" in message and "3,000/s" in message and "5,000/s" in message
    assert "infbench calibrate" in message
    assert _warning(_scenario(rate=5000, processes=2), _calibration(aiohttp=3000)) is None
    assert _warning(_scenario(rate=2000), _calibration(aiohttp=3000)) is None


def test_processes_count_only_up_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibrate.os, "cpu_count", lambda: 1)
    assert _warning(_scenario(rate=5000, processes=4), _calibration(aiohttp=3000))


def test_no_warning_without_a_figure_for_the_sender() -> None:
    assert _warning(_scenario("fast", rate=10**6), _calibration(aiohttp=3000)) is None
    assert _warning(_scenario("fast", rate=10**6), _calibration(fast=None)) is None


def _render(scenario: Scenario, path: Path) -> tuple[str | None, str]:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    message = warn_if_over_capacity(
        scenario, build_schedule(scenario.workload, Path(".")), console, path
    )
    return message, out.getvalue()


def test_warn_if_over_capacity_prints_only_with_a_calibration(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    assert _render(_scenario(rate=10**5), path) == (None, "")  # no file: nothing at all
    path.write_text(json.dumps(_calibration(aiohttp=1000)))
    message, printed = _render(_scenario(rate=10**5), path)
    assert message and printed.startswith("warning: the scenario's peak rate 100,000/s")
    assert _render(_scenario(rate=100), path) == (None, "")


def test_an_unreadable_calibration_is_named_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    message, printed = _render(_scenario(rate=10**5), path)
    assert message is None and "ignoring calibration file" in printed
