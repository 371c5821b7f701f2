"""Scenario fuzzing: whatever the file holds, loading it ends in a Scenario or in an
InfbenchError with exit code 2 — never in a traceback."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infbench.analysis.slo import parse_slo
from infbench.cli import app
from infbench.errors import InfbenchError
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule

VALID: dict[str, Any] = {
    "version": 1,
    "name": "fuzz",
    "target": {"kind": "url", "url": "http://127.0.0.1:3000", "ready": {"path": "/readyz"}},
    "request": {
        "method": "POST",
        "path": "/classify",
        "headers": {"Authorization": "Bearer ${FUZZ_TOKEN:-x}"},
        "body": {"text": "{{text}}"},
        "timeout": "5s",
    },
    "client": {"sender": "aiohttp", "connections": 8},
    "workload": {
        "seed": 1,
        "warmup": "1s",
        "phases": [
            {"name": "steady", "duration": "2s", "arrival": {"process": "poisson", "rate": 5}},
            {
                "name": "bursty",
                "duration": "2s",
                "arrival": {"process": "gamma", "rate": 5, "cv": 2},
            },
        ],
    },
    "slo": {"p99": "250ms", "error_rate": 0.01},
    "faults": [],
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["5s", "-1s", "1e309", "nan", "${NOPE}", "${X:-1}", "../x", "0", "", "1/m"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.sampled_from(list(VALID)), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def check(text: str | bytes, overrides: list[str] | None = None) -> None:
    """Load like `infbench validate`: a Scenario, or an exit-2 InfbenchError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            loaded = load_scenario(path, overrides)
            parse_slo(loaded.scenario.slo)
            if _small(loaded.scenario.workload):
                build_schedule(loaded.scenario.workload, loaded.base_dir)
        except InfbenchError as exc:
            assert exc.exit_code == 2, exc
            assert str(exc).strip()


def _small(workload: Any) -> bool:
    """Schedules of up to a million arrivals are built too (bigger ones only cost time)."""
    total = 0.0
    for phase in workload.phases:
        duration = phase.duration_s or 0.0
        total += phase.arrival.mean_rate(duration) * duration
    warmup = workload.warmup.duration if workload.warmup else 0.0
    return total + warmup * 1e3 <= 1e6  # NaN (closed loop, trace) compares False


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


def mutate(data: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "extra" and isinstance(parent[last], dict):
        parent[last]["unexpected_key"] = value
    else:
        parent[last] = value
    return data


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(values)
def test_random_yaml_documents(document: Any) -> None:
    check(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.data())
def test_mutations_of_a_valid_scenario(data: st.DataObject) -> None:
    scenario = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(scenario)))
        action = data.draw(st.sampled_from(["replace", "delete", "extra"]))
        if not path and action != "replace":
            continue
        scenario = mutate(scenario, path, action, data.draw(values))
    check(yaml.safe_dump(scenario, allow_unicode=True))


@FUZZ
@given(st.lists(st.text(max_size=40), max_size=3))
def test_random_set_overrides(overrides: list[str]) -> None:
    check(yaml.safe_dump(VALID), overrides)


def test_the_cli_never_shows_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    for text in ("", "- 1\n- 2", "version: [1", "\xff\xfe", "name: {a: *b}", VALID | {"x": 1}):
        path = tmp_path / "s.yaml"
        if isinstance(text, dict):
            path.write_text(yaml.safe_dump(text))
        else:
            path.write_bytes(text.encode("latin-1"))
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 2, (text, result.output)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
