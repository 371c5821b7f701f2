"""Arrival processes as maths: exact tables, statistical properties, hypothesis properties."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infbench.errors import InputError
from infbench.scenario.model import ClosedArrival, GammaArrival, Workload
from infbench.schedule.arrivals import (
    build_schedule,
    constant_offsets,
    gamma_offsets,
    load_trace,
    onoff_offsets,
    poisson_offsets,
    ramp_offsets,
    steps_offsets,
    think_sampler,
    trace_offsets,
)


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def gap_cv(offsets: np.ndarray) -> float:
    gaps = np.diff(offsets)
    return float(gaps.std() / gaps.mean())


def workload(*phases: dict[str, Any], seed: int = 42, **extra: Any) -> Workload:
    return Workload.model_validate({"seed": seed, "phases": list(phases), **extra})


def phase(name: str, arrival: dict[str, Any], duration: float | None = 10, **extra: Any) -> dict:
    return {
        "name": name,
        "arrival": arrival,
        **({"duration": duration} if duration else {}),
        **extra,
    }


# --- exact tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "duration", "expected"),
    [
        (4, 1, [0, 0.25, 0.5, 0.75]),
        (3, 1, [0, 1 / 3, 2 / 3]),
        (2, 1.6, [0, 0.5, 1.0, 1.5]),
        (0.5, 5, [0, 2, 4]),
        (10, 0, []),
    ],
)
def test_constant_table(rate: float, duration: float, expected: list[float]) -> None:
    np.testing.assert_array_equal(constant_offsets(rate, duration), expected)


@pytest.mark.parametrize(
    ("rate_from", "rate_to", "duration", "formula", "count"),
    [
        (0, 10, 2, lambda k: np.sqrt(k / 2.5), 10),  # Λ = 2.5t²
        (10, 10, 2, lambda k: k / 10, 20),  # Λ = 10t
        (10, 0, 2, lambda k: (10 - np.sqrt(100 - 10 * k)) / 5, 10),  # Λ = 10t - 2.5t²
        (2, 6, 4, lambda k: -2 + np.sqrt(4 + 2 * k), 16),  # Λ = 2t + t²/2
    ],
)
def test_ramp_constant_table(
    rate_from: float, rate_to: float, duration: float, formula: Any, count: int
) -> None:
    offsets = ramp_offsets(rate_from, rate_to, duration, "constant", rng())
    np.testing.assert_allclose(offsets, formula(np.arange(count, dtype=float)), rtol=1e-12)


def test_steps_constant_table_zero_step_and_last_rate_holds() -> None:
    offsets = steps_offsets([2, 0, 4], 1.0, 4.0, "constant", rng())
    expected = [0, 0.5, 2, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 3.75]
    np.testing.assert_allclose(offsets, expected, rtol=0, atol=1e-12)


def test_steps_shorter_duration_ignores_later_steps() -> None:
    np.testing.assert_allclose(
        steps_offsets([4, 100], 1.0, 1.0, "constant", rng()), [0, 0.25, 0.5, 0.75]
    )


def test_trace_offsets_shift_and_scale() -> None:
    np.testing.assert_allclose(trace_offsets(np.array([10.0, 10.5, 12.0]), 2.0), [0, 1, 4])


# --- statistical properties ----------------------------------------------------------------------


def test_poisson_rate_and_cv() -> None:
    offsets = poisson_offsets(1000, 200, rng())
    assert len(offsets) / 200 == pytest.approx(1000, rel=0.01)
    assert gap_cv(offsets) == pytest.approx(1.0, rel=0.03)
    assert offsets[0] > 0  # the first arrival is one gap in


@pytest.mark.parametrize(
    ("spec", "rate", "duration"),
    [
        ({"cv": 3}, 5000, 200),
        ({"cv": 0.5}, 1000, 150),
        ({"shape": 1.2}, 1000, 150),
        ({"shape": 0.8}, 1000, 150),
    ],
)
def test_gamma_rate_and_cv(spec: dict[str, float], rate: float, duration: float) -> None:
    cv = GammaArrival.model_validate({"process": "gamma", "rate": rate, **spec}).gap_cv
    offsets = gamma_offsets(rate, cv, duration, rng())
    assert len(offsets) >= 100_000
    assert len(offsets) / duration == pytest.approx(rate, rel=0.01)
    assert gap_cv(offsets) == pytest.approx(cv, rel=0.03)


@pytest.mark.parametrize(
    ("spells", "on", "off", "duration"),
    [("fixed", 0.3, 0.7, 300), ("exponential", 0.002, 0.003, 300)],
)
def test_onoff_mean_rate_matches_formula(
    spells: Any, on: float, off: float, duration: float
) -> None:
    offsets = onoff_offsets(2000, 200, on, off, spells, duration, rng())
    expected = (2000 * on + 200 * off) / (on + off)
    assert len(offsets) >= 100_000
    assert len(offsets) / duration == pytest.approx(expected, rel=0.01)


def test_onoff_fixed_spells_silent_when_off() -> None:
    offsets = onoff_offsets(500, 0, 0.25, 0.75, "fixed", 100, rng())
    assert len(offsets) > 0
    assert np.all(np.mod(offsets, 1.0) < 0.25 + 1e-9)


def _assert_unit_poisson(units: np.ndarray) -> None:
    """Λ(t_k) of an inhomogeneous Poisson stream is a rate-1 Poisson stream."""
    gaps = np.diff(units)
    assert gaps.mean() == pytest.approx(1.0, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


def test_ramp_poisson_rate_and_time_changed_cv() -> None:
    offsets = ramp_offsets(0, 2000, 200, "poisson", rng())
    assert len(offsets) / 200 == pytest.approx(1000, rel=0.01)
    _assert_unit_poisson(offsets**2 * 2000 / (2 * 200))


def test_steps_poisson_rate_and_time_changed_cv() -> None:
    rates, step, duration = [500, 1500, 0, 1000], 50.0, 200.0
    offsets = steps_offsets(rates, step, duration, "poisson", rng())
    assert len(offsets) / duration == pytest.approx(750, rel=0.01)
    assert not np.any((offsets >= 100) & (offsets < 150))
    edges = np.arange(len(rates) + 1) * step
    cum = np.concatenate(([0.0], np.cumsum(np.array(rates) * step)))
    _assert_unit_poisson(np.interp(offsets, edges, cum))


def test_a_million_arrivals_come_as_one_sorted_array() -> None:
    """Drawn in bulk (numpy), not one by one; benchmarks/ measures how fast."""
    offsets = poisson_offsets(10_000, 100, rng())
    assert abs(len(offsets) - 1_000_000) < 5_000  # 5 standard deviations of Poisson(1e6)
    assert offsets.dtype == np.float64 and np.all(np.diff(offsets) >= 0)
    assert offsets[0] > 0 and offsets[-1] < 10_000


# --- hypothesis properties -----------------------------------------------------------------------

RATE = st.floats(min_value=0.5, max_value=500)
DURATION = st.floats(min_value=0.1, max_value=10)
ARRIVAL = st.one_of(
    st.builds(lambda r: {"process": "constant", "rate": r}, RATE),
    st.builds(lambda r: {"process": "poisson", "rate": r}, RATE),
    st.builds(lambda r, cv: {"process": "gamma", "rate": r, "cv": cv}, RATE, st.floats(0.2, 4)),
    st.builds(
        lambda r, off, on, ex: {
            "process": "onoff",
            "rate_on": r,
            "rate_off": off,
            "on": on,
            "off": on * 2,
            "spells": "exponential" if ex else "fixed",
        },
        RATE,
        st.floats(0, 50),
        st.floats(0.01, 2),
        st.booleans(),
    ),
    st.builds(
        lambda a, b, c: {
            "process": "ramp",
            "from": a,
            "to": b + 0.5,
            "shape": "poisson" if c else "constant",
        },
        st.floats(0, 500),
        RATE,
        st.booleans(),
    ),
    st.builds(
        lambda rs, s, c: {
            "process": "steps",
            "rates": rs,
            "step": s,
            "shape": "poisson" if c else "constant",
        },
        st.lists(st.floats(0, 500), min_size=1, max_size=5).filter(any),
        st.floats(0.1, 3),
        st.booleans(),
    ),
)
SEED = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=60, deadline=None)
@given(arrival=ARRIVAL, duration=DURATION, seed=SEED)
def test_offsets_sorted_inside_and_reproducible(arrival: dict, duration: float, seed: int) -> None:
    spec = workload(phase("p", arrival, duration), seed=seed)
    first, again = build_schedule(spec, pathlib.Path(".")), build_schedule(spec, pathlib.Path("."))
    offsets = first.phases[0].offsets
    assert offsets is not None and offsets.dtype == np.float64
    assert np.all(np.diff(offsets) >= 0)
    assert np.all((offsets >= 0) & (offsets < duration))
    np.testing.assert_array_equal(offsets, again.phases[0].offsets)
    assert first.sha256 == again.sha256


@settings(max_examples=30, deadline=None)
@given(rate=st.floats(10, 500), duration=st.floats(1, 5), seed=SEED)
def test_streams_differ_by_phase_and_seed(rate: float, duration: float, seed: int) -> None:
    arrival = {"process": "poisson", "rate": rate}
    spec = workload(phase("a", arrival, duration), phase("b", arrival, duration), seed=seed)
    a, b = build_schedule(spec, pathlib.Path(".")).phases
    assert not np.array_equal(a.offsets, b.offsets)
    other = workload(phase("a", arrival, duration), phase("b", arrival, duration), seed=seed ^ 1)
    assert (
        build_schedule(other, pathlib.Path(".")).sha256
        != build_schedule(spec, pathlib.Path(".")).sha256
    )


# --- schedules -----------------------------------------------------------------------------------


def test_schedule_shape_and_indices() -> None:
    spec = workload(
        phase("steady", {"process": "constant", "rate": 5}, 2),
        phase("loop", {"process": "closed", "concurrency": 4, "think": "100ms"}, 3),
        warmup="1s",
    )
    schedule = build_schedule(spec, pathlib.Path("."))
    warm, steady, loop = schedule.phases
    assert [p.index for p in schedule.phases] == [0, 1, 2]
    assert (warm.name, warm.warmup, warm.process, warm.scheduled) == ("warmup", True, "constant", 5)
    assert schedule.measured == (steady, loop)
    assert schedule.total_duration_s == 6
    assert steady.mean_rate == 5 and steady.declared_rate == 5
    assert loop.offsets is None and loop.closed is not None and loop.scheduled == 0
    assert math.isnan(loop.mean_rate) and math.isnan(loop.declared_rate)
    assert not steady.offsets.flags.writeable  # type: ignore[union-attr]


def test_warmup_does_not_change_measured_streams() -> None:
    arrival = {"process": "poisson", "rate": 100}
    plain = build_schedule(workload(phase("p", arrival)), pathlib.Path("."))
    warmed = build_schedule(workload(phase("p", arrival), warmup="2s"), pathlib.Path("."))
    np.testing.assert_array_equal(plain.phases[0].offsets, warmed.measured[0].offsets)
    assert warmed.phases[0].seed_seq.spawn_key == (0,)
    assert warmed.measured[0].seed_seq.spawn_key == (1,)


@pytest.mark.parametrize(
    ("arrival", "process", "rate"),
    [
        ({"process": "ramp", "from": 20, "to": 100}, "poisson", 20),
        ({"process": "ramp", "from": 0, "to": 100}, "poisson", 50),
        ({"process": "steps", "rates": [30, 90], "step": 5}, "poisson", 30),
        ({"process": "steps", "rates": [0, 40], "step": 5}, "poisson", 20),
        ({"process": "gamma", "rate": 70, "cv": 2}, "gamma", 70),
        ({"process": "closed", "concurrency": 3}, "closed", math.nan),
    ],
)
def test_default_warmup(arrival: dict, process: str, rate: float) -> None:
    spec = workload(phase("p", arrival), warmup={"duration": 4})
    warm = build_schedule(spec, pathlib.Path(".")).phases[0]
    assert (warm.process, warm.duration_s) == (process, 4)
    assert warm.declared_rate == pytest.approx(rate, nan_ok=True)


def test_explicit_warmup_arrival_and_max_requests() -> None:
    spec = workload(
        phase("p", {"process": "constant", "rate": 100}, max_requests=7),
        warmup={"duration": 1, "arrival": {"process": "constant", "rate": 3}},
    )
    warm, p = build_schedule(spec, pathlib.Path(".")).phases
    np.testing.assert_allclose(warm.offsets, [0, 1 / 3, 2 / 3])  # type: ignore[arg-type]
    assert p.scheduled == 7 and p.max_requests == 7


def test_sha256_covers_closed_seed() -> None:
    closed = {"process": "closed", "concurrency": 2, "think": 1, "think_cv": 1}
    one = build_schedule(workload(phase("c", closed), seed=1), pathlib.Path("."))
    two = build_schedule(workload(phase("c", closed), seed=2), pathlib.Path("."))
    assert one.sha256 != two.sha256
    assert (
        one.sha256 == build_schedule(workload(phase("c", closed), seed=1), pathlib.Path(".")).sha256
    )


# --- traces --------------------------------------------------------------------------------------


def test_trace_phase_csv_infers_duration(tmp_path: pathlib.Path) -> None:
    (tmp_path / "t.csv").write_text("id,ts\na,1000\nb,1500\n\nc,3000\n")
    arrival = {"process": "trace", "path": "t.csv", "column": "ts", "unit": "ms", "scale": 2}
    schedule = build_schedule(workload(phase("t", arrival, None), warmup="1s"), tmp_path)
    warm, plan = schedule.phases
    np.testing.assert_allclose(plan.offsets, [0, 1, 4])  # type: ignore[arg-type]
    assert plan.duration_s == pytest.approx(6)  # span 4 plus one mean gap of 2
    assert plan.declared_rate == pytest.approx(0.5)
    assert (warm.process, warm.declared_rate) == ("poisson", pytest.approx(0.5))


def test_trace_phase_jsonl_duration_drops_late(tmp_path: pathlib.Path) -> None:
    lines = [json.dumps({"timestamp": t}) for t in (5, 5, 6, 9, 20)]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    arrival = {"process": "trace", "path": "t.jsonl"}
    plan = build_schedule(workload(phase("t", arrival, 10)), tmp_path).phases[0]
    np.testing.assert_allclose(plan.offsets, [0, 0, 1, 4])  # type: ignore[arg-type]
    assert plan.duration_s == 10


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("unsorted.csv", "timestamp\n1\n3\n2\n", 4, "earlier than 3.0 on line 3"),
        ("negative.csv", "timestamp\n1\n-2\n", 3, "negative"),
        ("nan.csv", "timestamp\n1\nnan\n", 3, "not finite"),
        ("inf.jsonl", '{"timestamp": 1}\n{"timestamp": Infinity}\n', 2, "not finite"),
        ("nan.ndjson", '{"timestamp": 1}\n\n{"timestamp": NaN}\n', 3, "not finite"),
        ("word.csv", "timestamp\n1\nsoon\n", 3, "not a number"),
        ("bool.jsonl", '{"timestamp": true}\n', 1, "not a number"),
        ("missing.jsonl", '{"timestamp": 1}\n{"ts": 2}\n', 2, "no key 'timestamp'"),
        ("broken.jsonl", '{"timestamp": 1\n', 1, "not valid JSON"),
        ("column.csv", "ts\n1\n", 1, "no column 'timestamp' in the header (ts)"),
        ("empty.csv", "", None, "no timestamps"),
        ("header.csv", "timestamp\n", None, "no timestamps"),
        ("empty.jsonl", "\n", None, "no timestamps"),
        ("trace.txt", "1\n2\n", None, "unknown trace format"),
    ],
)
def test_trace_errors(
    tmp_path: pathlib.Path, name: str, text: str, line: int | None, words: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_trace(path)
    where = f"{path}:{line}:" if line else f"{path}:"
    assert caught.value.message.startswith(where)
    assert words in caught.value.message
    assert caught.value.hint


def test_trace_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match="cannot read the trace"):
        load_trace(tmp_path / "absent.csv")


def test_trace_single_timestamp_needs_duration(tmp_path: pathlib.Path) -> None:
    (tmp_path / "one.csv").write_text("timestamp\n3\n")
    spec = workload(phase("t", {"process": "trace", "path": "one.csv"}, None))
    with pytest.raises(InputError, match="set `duration`"):
        build_schedule(spec, tmp_path)


# --- think times ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0])
def test_think_sampler_mean_and_cv(cv: float) -> None:
    sample = think_sampler(
        ClosedArrival(process="closed", concurrency=1, think=0.2, think_cv=cv), rng()
    )
    draws = np.array([sample() for _ in range(100_000)])
    assert draws.mean() == pytest.approx(0.2, rel=0.02)
    assert draws.std() / draws.mean() == pytest.approx(cv, rel=0.03)


@pytest.mark.parametrize(("think", "cv", "value"), [(0.3, 0, 0.3), (0, 1, 0.0)])
def test_think_sampler_fixed(think: float, cv: float, value: float) -> None:
    sample = think_sampler(
        ClosedArrival(process="closed", concurrency=1, think=think, think_cv=cv), rng()
    )
    assert {sample() for _ in range(10)} == {value}


def test_sha256_golden_for_rng_free_schedule() -> None:
    """Pins the canonical encoding: changing it must be a deliberate, versioned change."""
    spec = workload(
        phase("a", {"process": "constant", "rate": 4}, 2),
        phase("b", {"process": "closed", "concurrency": 2}, 1),
        seed=1,
    )
    expected = "784fda826f8b9566119bc173e0b86bf130e3efff76e942e77af0b2a7645b93a5"
    assert build_schedule(spec, pathlib.Path(".")).sha256 == expected
