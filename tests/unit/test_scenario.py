"""Scenario v1: units, validation messages with key path and line, ${ENV}, --set overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infbench.errors import ScenarioError
from infbench.scenario.model import GammaArrival, RampArrival, Scenario, StepsArrival
from infbench.scenario.source import load_scenario, parse_override
from infbench.units import parse_duration, parse_rate

BASE = """\
version: 1
name: demo
target: {kind: url, url: "http://127.0.0.1:9"}
request:
  path: /classify
  headers: {Authorization: "Bearer ${API_TOKEN}"}
  body: {text: "{{text}}"}
workload:
  seed: 3
  warmup: 2s
  phases:
    - {name: steady, duration: 30s, arrival: {process: poisson, rate: 50}}
    - name: bursty
      duration: 1m
      arrival: {process: gamma, rate: 50, cv: 3}
    - {name: ramp, duration: 500ms, arrival: {process: ramp, from: 10, to: 200}}
slo: {p99: 250ms, error_rate: 1%}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), (1.5, 1.5), ("250us", 2.5e-4)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 parsecs", "-1s", "", True, "s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate"), [(50, 50.0), ("50/s", 50.0), ("3000/m", 50.0), ("0.5", 0.5)]
)
def test_rates(text: object, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


def test_loads_every_section(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, BASE), env={"API_TOKEN": "s3cret"})
    scenario = loaded.scenario
    assert scenario.request.headers["Authorization"] == "Bearer s3cret"
    assert scenario.workload.warmup is not None and scenario.workload.warmup.duration == 2.0
    bursty, ramp = scenario.workload.phases[1], scenario.workload.phases[2]
    assert isinstance(bursty.arrival, GammaArrival) and bursty.arrival.gap_cv == 3
    assert bursty.duration == 60.0
    assert isinstance(ramp.arrival, RampArrival) and ramp.arrival.from_ == 10
    assert ramp.duration == 0.5
    assert loaded.base_dir == tmp_path.resolve()


def test_stored_copy_keeps_env_template_not_secret(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, BASE), env={"API_TOKEN": "s3cret"})
    text = json.dumps(loaded.stored)
    assert "s3cret" not in text
    assert loaded.stored["request"]["headers"]["Authorization"] == "Bearer ${API_TOKEN}"
    assert loaded.stored["workload"]["phases"][2]["arrival"]["from"] == 10.0


def test_missing_env_names_variable_and_key(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, BASE), env={})
    message = str(info.value)
    assert "API_TOKEN" in message and "request.headers.Authorization" in message
    assert "line 6" in message


def test_env_default(tmp_path: Path) -> None:
    text = BASE.replace("${API_TOKEN}", "${API_TOKEN:-anonymous}")
    loaded = load_scenario(write(tmp_path, text), env={})
    assert loaded.scenario.request.headers["Authorization"] == "Bearer anonymous"


def test_error_names_key_path_value_and_line(tmp_path: Path) -> None:
    text = BASE.replace("cv: 3", "cv: -1")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text), env={"API_TOKEN": "x"})
    message = str(info.value)
    assert "workload.phases[1].arrival.cv" in message
    assert "-1" in message and "greater than 0" in message
    assert "scenario.yaml:15" in message
    assert info.value.exit_code == 2


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    text = BASE.replace("seed: 3", "seed: 3\n  sead: 4")
    with pytest.raises(ScenarioError, match=r"workload\.sead: unknown key .*scenario.yaml:10"):
        load_scenario(write(tmp_path, text), env={"API_TOKEN": "x"})


def test_unknown_process_lists_choices(tmp_path: Path) -> None:
    text = BASE.replace("process: poisson", "process: poison")
    with pytest.raises(ScenarioError, match=r"workload\.phases\[0\]\.arrival.*poison"):
        load_scenario(write(tmp_path, text), env={"API_TOKEN": "x"})


def test_set_overrides_values_and_marks_origin(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    loaded = load_scenario(
        path,
        ["workload.phases[0].arrival.rate=100", "client.connections=8"],
        env={"API_TOKEN": "x"},
    )
    assert loaded.scenario.workload.phases[0].arrival.rate == 100  # type: ignore[union-attr]
    assert loaded.scenario.client.connections == 8
    with pytest.raises(ScenarioError, match=r"arrival\.rate.*\(--set\)"):
        load_scenario(path, ["workload.phases[0].arrival.rate=-5"], env={"API_TOKEN": "x"})
    with pytest.raises(ScenarioError, match=r"expected key\.path=value"):
        load_scenario(path, ["nonsense"], env={"API_TOKEN": "x"})


def test_parse_override_reads_yaml_values() -> None:
    assert parse_override("a.b[2].c=3") == (("a", "b", 2, "c"), 3)
    assert parse_override("name=x=y") == (("name",), "x=y")
    assert parse_override("a.list=[1, 2]") == (("a", "list"), [1, 2])


def test_gamma_needs_exactly_one_of_cv_or_shape(tmp_path: Path) -> None:
    text = BASE.replace("cv: 3", "cv: 3, shape: 2")
    with pytest.raises(ScenarioError, match=r"exactly one of `cv` or `shape`"):
        load_scenario(write(tmp_path, text), env={"API_TOKEN": "x"})


def test_shape_gives_cv() -> None:
    assert GammaArrival(process="gamma", rate=1, shape=4).gap_cv == pytest.approx(0.5)


def test_duplicate_phase_names(tmp_path: Path) -> None:
    text = BASE.replace("name: bursty", "name: steady")
    with pytest.raises(ScenarioError, match="unique; repeated: steady"):
        load_scenario(write(tmp_path, text), env={"API_TOKEN": "x"})


def test_steps_default_duration() -> None:
    scenario = Scenario.model_validate(
        {
            "version": 1,
            "name": "s",
            "target": {"kind": "url", "url": "http://127.0.0.1:1"},
            "workload": {
                "phases": [
                    {"name": "p", "arrival": {"process": "steps", "rates": [1, 2], "step": "5s"}}
                ]
            },
        }
    )
    phase = scenario.workload.phases[0]
    assert isinstance(phase.arrival, StepsArrival) and phase.duration_s == 10.0


def test_alias_bomb_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 8):
        prev = chr(ord("a") + level - 1)
        cur = chr(ord("a") + level)
        items = ", ".join([f"*{prev}"] * 10)
        bomb += f"{cur}: &{cur} [{items}]\n"
    with pytest.raises(ScenarioError, match="YAML nodes"):
        load_scenario(write(tmp_path, bomb))


def test_unsafe_yaml_tags_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError):
        load_scenario(write(tmp_path, "!!python/object/apply:os.system ['true']\n"))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match=r"scenario.yaml:3: not valid YAML: expected"):
        load_scenario(write(tmp_path, "version: 1\nname: [unclosed\n"))


def test_version_must_be_1(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"version: .*1.*got 2"):
        load_scenario(
            write(tmp_path, BASE.replace("version: 1", "version: 2")), env={"API_TOKEN": "x"}
        )


def test_same_file_same_hash(tmp_path: Path) -> None:
    first = load_scenario(write(tmp_path, BASE), env={"API_TOKEN": "a"})
    second = load_scenario(write(tmp_path, BASE), env={"API_TOKEN": "b"})
    assert first.sha256 == second.sha256  # secrets never enter the hash either


def test_literal_secrets_are_redacted_in_the_stored_copy(tmp_path: Path) -> None:
    text = BASE.replace(
        'headers: {Authorization: "Bearer ${API_TOKEN}"}',
        "headers: {Authorization: Bearer hunter2, X-Api-Key: k3y, "
        'X-Trace: "${API_TOKEN}", Accept: x}',
    )
    loaded = load_scenario(write(tmp_path, text), env={"API_TOKEN": "s3cret"})
    headers = loaded.stored["request"]["headers"]
    assert headers == {
        "Authorization": "<redacted>",
        "X-Api-Key": "<redacted>",
        "X-Trace": "${API_TOKEN}",
        "Accept": "x",
    }
    assert loaded.scenario.request.headers["Authorization"] == "Bearer hunter2"
    assert "hunter2" not in json.dumps(loaded.stored) and "s3cret" not in json.dumps(loaded.stored)
