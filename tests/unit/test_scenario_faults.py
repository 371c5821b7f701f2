"""Scenario v1 additions of issue 8: `faults`, `target.restart`, paths inside the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from infbench.errors import ScenarioError, UsageError
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule
from infbench.targets.faults import check_faults, first_measured_phase

BASE = """version: 1
name: f
target: {kind: command, command: [server], url: "http://127.0.0.1:1"}
workload:
  warmup: 2s
  phases:
    - {name: a, duration: 5s, arrival: {process: constant, rate: 1}}
    - {name: b, duration: 5s, arrival: {process: constant, rate: 1}}
"""


def load(tmp_path: Path, extra: str = "", text: str = BASE) -> object:
    path = tmp_path / "s.yaml"
    path.write_text(text + extra)
    return load_scenario(path)


def test_faults_and_restart_policy_load(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        "faults:\n  - {at: 1s, action: kill_worker}\n  - {at: 6s, action: pause, duration: 2s}\n",
        BASE.replace("url: ", "restart: on-failure, url: "),
    )
    scenario = loaded.scenario  # type: ignore[attr-defined]
    assert scenario.target.restart == "on-failure"
    assert [(f.action, f.at, f.end_s) for f in scenario.faults] == [
        ("kill_worker", 1.0, 1.0),
        ("pause", 6.0, 8.0),
    ]
    assert loaded.stored["faults"][1] == {"at": 6.0, "action": "pause", "duration": 2.0}  # type: ignore[attr-defined]
    schedule = build_schedule(scenario.workload, tmp_path)
    assert first_measured_phase(schedule) == "a"  # the warm-up is not where faults count from


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("faults: [{at: 10s, action: kill_server}]", "past the measured phases' 10s"),
        ("faults: [{at: 9s, action: pause, duration: 1s}]", "ends at 10s"),
        ("faults: [{at: 1s, action: pause}]", "faults[0]: a pause needs `duration`"),
        ("faults: [{at: 1s, action: restart, duration: 1s}]", "pause only"),
        ("faults: [{at: 1s, action: kill}]", "faults[0].action"),
        ("faults: [{at: 1s, action: kill_server, extra: 1}]", "faults[0].extra: unknown key"),
    ],
)
def test_bad_faults_name_the_key(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path, extra + "\n")
    assert problem in str(caught.value)


def test_restart_policy_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^target\.restart: Input should be 'never'"):
        load(tmp_path, text=BASE.replace("url: ", "restart: always, url: "))


def test_a_trace_phase_is_checked_once_its_length_is_known(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp\n0\n1\n2\n3\n")
    text = BASE.replace(
        "duration: 5s, arrival: {process: constant, rate: 1}}\n    - {name: b",
        "arrival: {process: trace, path: t.csv}}\n    - {name: b",
    )
    loaded = load(tmp_path, "faults: [{at: 9.5s, action: kill_server}]\n", text)
    scenario = loaded.scenario  # type: ignore[attr-defined]
    schedule = build_schedule(scenario.workload, tmp_path)
    with pytest.raises(ScenarioError, match=r"ends at 9\.5s, past the measured phases' 9s"):
        check_faults(scenario, schedule, None)
    with pytest.raises(UsageError, match="--url"):
        check_faults(scenario, schedule, "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("data/x.jsonl", True),
        ("./data/../x.jsonl", True),
        ("/abs/x.jsonl", True),
        ("~/x.jsonl", True),
        ("../x.jsonl", False),
        ("data/../../x.jsonl", False),
    ],
)
def test_dataset_paths_stay_in_the_scenario_folder(tmp_path: Path, path: str, ok: bool) -> None:
    extra = f"request: {{dataset: {{path: '{path}'}}}}\n"
    if ok:
        load(tmp_path, extra)
    else:
        with pytest.raises(ScenarioError, match=r"request\.dataset\.path: .*absolute path"):
            load(tmp_path, extra)
