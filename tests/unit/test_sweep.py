"""`infbench sweep`'s pure parts: rate lists, SLO strings, grids, level verdicts, and the
capacity search on fake probes (deterministic: no server, no clock)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from infbench.analysis.search import (
    Estimate,
    LevelVerdict,
    SearchResult,
    SearchSettings,
    estimate_metric,
    judge,
    search_max,
)
from infbench.commands.sweep import Budget, SweepOptions, phase_override, slo_rules
from infbench.commands.sweep_plan import expand_grid, parse_rates, parse_slo_text
from infbench.errors import UsageError
from infbench.report.sweep_views import result_json
from infbench.results.hlog import BucketGrid, MetricSeconds, PhaseSeconds
from infbench.scenario.source import load_scenario

# --- rates -------------------------------------------------------------------------------------


def test_rate_list_and_units() -> None:
    assert parse_rates("5,10, 20") == [5.0, 10.0, 20.0]
    assert parse_rates("600/m,1.5") == [10.0, 1.5]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5..80x2", [5, 10, 20, 40, 80]),
        ("5..70x2", [5, 10, 20, 40]),  # the end is kept only when the series reaches it
        ("1..1x3", [1]),
        ("10..40x1.5", [10, 15, 22.5, 33.75]),
    ],
)
def test_geometric_ranges(text: str, expected: list[float]) -> None:
    assert parse_rates(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "give rates"),
        ("0,5", "above 0"),
        ("fast", "rate"),
        ("5..80", "needs a factor"),
        ("5..80x1", "above 1"),
        ("5..80xq", "must be a number"),
        ("80..5x2", "must rise"),
        ("1..1e9x1.01", "at most 100"),
    ],
)
def test_bad_rates_name_the_flag(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_rates(text)
    assert "--rates" in str(info.value)


# --- SLO strings -------------------------------------------------------------------------------


def test_slo_text_gives_scenario_thresholds() -> None:
    rules = parse_slo_text("p99<=200ms, error_rate<=1%,achieved_rps>=50")
    assert [(r.metric, r.threshold) for r in rules] == [
        ("p99", 200.0),  # milliseconds, like the summaries
        ("error_rate", 0.01),
        ("achieved_rps", 50.0),
    ]
    assert parse_slo_text("p50<1s")[0].threshold == 1000.0
    assert parse_slo_text("p90: 20ms")[0].threshold == 20.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99>=200ms", "bounded above; write p99<=200ms"),
        ("achieved_rps<=5", "bounded below"),
        ("latency<=1s", "unknown metric"),
        ("p99<=fast", "duration"),
        ("error_rate<=1.5", "fraction"),
        ("p99 200ms", "expected METRIC<=VALUE"),
        (",", "no rule"),
    ],
)
def test_bad_slo_text(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_slo_text(text)


# --- grids --------------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_first_axis_slowest() -> None:
    points = expand_grid(["target.workers=1,2", "target.service=a:A,b:B"])
    assert [p.overrides for p in points] == [
        ["target.workers=1", "target.service=a:A"],
        ["target.workers=1", "target.service=b:B"],
        ["target.workers=2", "target.service=a:A"],
        ["target.workers=2", "target.service=b:B"],
    ]
    assert points[3].label == "target.workers=2 target.service=b:B"


def test_grid_values_keep_commas_inside_brackets_and_quotes() -> None:
    points = expand_grid(["workload.phases[0].arrival.rates=[1,2],[3]", "x='a,b',c"])
    assert [p.settings for p in points][:2] == [
        (("workload.phases[0].arrival.rates", "[1,2]"), ("x", "'a,b'")),
        (("workload.phases[0].arrival.rates", "[1,2]"), ("x", "c")),
    ]
    assert len(points) == 4


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["target.workers"], "expected KEY=V1,V2"),
        (["target.workers=1,,2"], "expected KEY=V1,V2"),
        (["=1,2"], "expected KEY=V1,V2"),
        (["a=1,2", "a=3"], "already a grid axis"),
        ([f"k{i}=1,2" for i in range(7)], "at most 100"),
    ],
)
def test_bad_grids(specs: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        expand_grid(specs)


# --- the capacity search on fake probes -------------------------------------------------------


def capacity(limit: float, calls: list[float]) -> Callable[[float], LevelVerdict]:
    def probe(rate: float) -> LevelVerdict:
        calls.append(rate)
        return LevelVerdict(passed=rate <= limit, confident=True)

    return probe


def stopped(result: SearchResult, precision: float = 0.10) -> str:
    """Why the search ended, as sweep.json says it."""
    return str(result_json(result, precision)["stopped"])


def test_brackets_up_then_bisects_to_the_precision() -> None:
    calls: list[float] = []
    result = search_max(capacity(57.0, calls), SearchSettings(10, 0.10), lambda: True)
    assert calls[:4] == [10, 20, 40, 80]
    assert [s.stage for s in result.steps[:4]] == ["bracket"] * 4
    assert result.last_pass is not None and result.first_fail is not None
    assert result.last_pass <= 57 < result.first_fail
    assert result.first_fail / result.last_pass <= 1.10
    assert result.confident and result.stopped == "precision"
    assert stopped(result) == "bracket within 10%"
    # bisection on the log scale: the first midpoint of [40, 80) is their geometric mean
    assert calls[4] == pytest.approx(math.sqrt(40 * 80))


def test_brackets_down_when_the_start_fails() -> None:
    calls: list[float] = []
    result = search_max(capacity(7.0, calls), SearchSettings(100, 0.25), lambda: True)
    assert calls[:5] == [100, 50, 25, 12.5, 6.25]
    assert result.last_pass is not None and result.first_fail is not None
    assert result.last_pass <= 7 < result.first_fail <= 1.25 * result.last_pass


def test_no_rate_passes() -> None:
    calls: list[float] = []
    settings = SearchSettings(8, min_rate=1)
    result = search_max(capacity(0.0, calls), settings, lambda: True)
    assert calls == [8, 4, 2, 1]
    assert result.last_pass is None and result.first_fail == 1
    assert result.stopped == "floor" and stopped(result) == "no tested rate met the SLO"


def test_every_rate_passes_up_to_max_rate() -> None:
    calls: list[float] = []
    settings = SearchSettings(10, max_rate=80)
    result = search_max(capacity(math.inf, calls), settings, lambda: True)
    assert calls == [10, 20, 40, 80]
    assert result.last_pass == 80 and result.first_fail is None
    assert result.stopped == "ceiling" and stopped(result) == "reached --max-rate"


def test_budget_stops_the_search_with_the_bracket_so_far() -> None:
    calls: list[float] = []
    allowed = iter([True, True, True, False])
    result = search_max(capacity(57.0, calls), SearchSettings(10), lambda: next(allowed))
    assert calls == [10, 20, 40, 80]
    assert (result.last_pass, result.first_fail) == (40, 80)
    assert result.stopped == "budget" and stopped(result) == "budget spent"
    early = search_max(capacity(57.0, []), SearchSettings(10), lambda: False)
    assert stopped(early) == "budget spent before the capacity was bracketed"


def test_uncertain_bounds_make_the_result_uncertain() -> None:
    def probe(rate: float) -> LevelVerdict:
        return LevelVerdict(passed=rate <= 30, confident=rate != 40)

    result = search_max(probe, SearchSettings(10, 0.5), lambda: True)
    assert result.last_pass == pytest.approx(math.sqrt(20 * 40)) and result.first_fail == 40
    assert not result.confident  # the first failing level was not judged with confidence


# --- a level's verdict ----------------------------------------------------------------------------


def test_judge_confident_and_uncertain() -> None:
    rules = parse_slo_text("p99<=200ms,error_rate<=1%")
    clear = [Estimate("p99", 120, 110, 150), Estimate("error_rate", 0.0, 0.0, 0.004)]
    assert judge(rules, clear) == LevelVerdict(True, True, tuple(clear), "")
    close = [Estimate("p99", 190, 150, 240), Estimate("error_rate", 0.0, 0.0, 0.004)]
    verdict = judge(rules, close)
    assert verdict.passed and not verdict.confident and "p99" in verdict.reason
    broken = [Estimate("p99", 190, 150, 240), Estimate("error_rate", 0.2, 0.1, 0.3)]
    assert judge(rules, broken).confident and not judge(rules, broken).passed
    no_interval = [Estimate("p99", 120), Estimate("error_rate", 0.0, 0.0, 0.004)]
    verdict = judge(rules, no_interval)  # too few values to bound p99: decided, but not sure
    assert verdict.passed and not verdict.confident
    assert not judge(rules, [Estimate("p99", None)]).passed


def test_judge_throughput_is_taken_as_measured() -> None:
    rules = parse_slo_text("achieved_rps>=50")
    assert judge(rules, [Estimate("achieved_rps", 60.0)]).confident
    verdict = judge(rules, [Estimate("achieved_rps", 40.0)])
    assert not verdict.passed and verdict.confident


def seconds(latency_us: int, per_second: int, n: int, failed: int = 0) -> PhaseSeconds:
    grid = BucketGrid(*(np.array([latency_us], dtype=np.int64) for _ in range(3)))
    metrics = {"latency": MetricSeconds(grid, np.full((n, 1), per_second, dtype=np.int64))}
    if failed:
        metrics["failed"] = MetricSeconds(grid, np.full((n, 1), failed, dtype=np.int64))
    return PhaseSeconds(np.arange(n, dtype=np.int64), metrics)


def test_estimates_from_seconds() -> None:
    rng = np.random.default_rng(1)
    p99 = estimate_metric("p99", seconds(10_000, 50, 40), None, rng)
    assert (p99.value, p99.low, p99.high) == (10.0, 10.0, 10.0)
    few = estimate_metric("p99", seconds(10_000, 5, 4), None, rng)  # 20 values: p99 unknowable
    assert few.value == 10.0 and few.low is None
    clean = estimate_metric("error_rate", seconds(10_000, 50, 40), None, rng)
    assert clean.value == 0 and clean.low == 0 and clean.high is not None
    assert 0 < clean.high < 0.003  # 0 of 2000: the binomial bound, not a bootstrap's 0
    errors = estimate_metric("error_rate", seconds(10_000, 45, 40, failed=5), None, rng)
    assert errors.value == pytest.approx(0.1)
    assert errors.low is not None and errors.high is not None
    assert errors.low < 0.1 < errors.high
    mean = estimate_metric("mean", seconds(10_000, 50, 40), 10.0, rng)
    assert mean.value == 10.0 and mean.low == mean.high == 10.0
    rate = estimate_metric("achieved_rps", seconds(10_000, 50, 40), 50.0, rng)
    assert rate == Estimate("achieved_rps", 50.0)


def streamed(latency_us: int, ttft_us: list[int], tpot_us: int, n: int = 40) -> PhaseSeconds:
    """A streamed level: every second 50 answers of ``latency_us``, their TTFTs spread over
    ``ttft_us`` (equal counts), and their TPOTs at ``tpot_us``."""

    def single(value_us: int) -> MetricSeconds:
        grid = BucketGrid(*(np.array([value_us], dtype=np.int64) for _ in range(3)))
        return MetricSeconds(grid, np.full((n, 1), 50, dtype=np.int64))

    values = np.array(ttft_us, dtype=np.int64)
    ttft = MetricSeconds(
        BucketGrid(values, values, values),
        np.full((n, len(values)), 50 // len(values), dtype=np.int64),
    )
    metrics = {"latency": single(latency_us), "ttft": ttft, "tpot": single(tpot_us)}
    return PhaseSeconds(np.arange(n, dtype=np.int64), metrics)


def test_a_ttft_slo_decides_on_the_ttft_histogram_not_on_latency() -> None:
    rng = np.random.default_rng(2)
    rules = parse_slo_text("ttft<=200ms,tpot<=40ms")
    # E2E latency of 900 ms breaks neither rule: only the tags `ttft` and `tpot` count.
    fast = streamed(900_000, [80_000, 120_000], 20_000)
    estimates = [estimate_metric(r.metric, fast, None, rng) for r in rules]
    assert estimates[0] == Estimate("ttft", 120.0, 120.0, 120.0)  # the p99 of the TTFTs
    assert estimates[1] == Estimate("tpot", 20.0, 20.0, 20.0)
    assert judge(rules, estimates) == LevelVerdict(True, True, tuple(estimates), "")
    slow = streamed(900_000, [80_000, 250_000], 20_000)  # the slowest 1 % of TTFTs > 200 ms
    verdict = judge(rules, [estimate_metric(r.metric, slow, None, rng) for r in rules])
    assert not verdict.passed and verdict.confident and verdict.reason == "ttft breaks the SLO"
    p50 = estimate_metric("ttft_p50", slow, None, rng)
    assert p50.value == 80.0  # half the answers at 80 ms
    bare = streamed(900_000, [80_000], 20_000)
    bare.metrics.pop("ttft")  # a phase that did not stream: no data, so the level fails
    verdict = judge(rules[:1], [estimate_metric("ttft", bare, None, rng)])
    assert not verdict.passed and verdict.reason == "ttft: no data"


def test_a_search_on_ttft_finds_the_rate_where_ttft_breaks() -> None:
    """The capacity search with levels judged on TTFT: up to 60/s the TTFT p99 stays at
    120 ms; above it the queue pushes it to 400 ms, while E2E latency never meets 200 ms."""
    rules = parse_slo_text("ttft<=200ms")
    rng = np.random.default_rng(3)

    def probe(rate: float) -> LevelVerdict:
        level = streamed(900_000, [80_000, 120_000 if rate <= 60 else 400_000], 20_000)
        return judge(rules, [estimate_metric("ttft", level, None, rng)])

    result = search_max(probe, SearchSettings(10, 0.1), lambda: True)
    assert result.last_pass is not None and result.first_fail is not None
    assert result.last_pass <= 60 < result.first_fail <= result.last_pass * 1.1
    assert result.confident and result.stopped == "precision"


def test_find_max_refuses_ttft_for_a_request_that_does_not_stream(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    with pytest.raises(UsageError, match="the SLO on ttft, tpot needs streamed answers"):
        slo_rules(SweepOptions(find_max=True, slo="ttft<=200ms,tpot<=50ms"), load_scenario(path))
    assert slo_rules(SweepOptions(find_max=True, slo="p99<=1s"), load_scenario(path))


# --- options, budget, and the phase a rate sweep rewrites ---------------------------------------


def test_exactly_one_mode() -> None:
    assert SweepOptions(rates="1,2").mode == "rates"
    assert SweepOptions(grid=("a=1,2",)).mode == "grid"
    with pytest.raises(UsageError, match="choose one mode"):
        _ = SweepOptions().mode
    with pytest.raises(UsageError, match="rates and find-max"):
        _ = SweepOptions(rates="1", find_max=True).mode


def test_budget_counts_runs() -> None:
    budget = Budget(None, max_runs=3)
    budget.spent(1.0)
    assert budget.allows()
    budget.spent(1.0, runs=2)
    assert not budget.allows()
    slow = Budget(10.0, None)
    slow.spent(11.0)  # the next run would end past the budget
    assert not slow.allows()


SCENARIO = """version: 1
name: s
target: {kind: url, url: "http://127.0.0.1:9"}
workload:
  warmup: 1s
  phases:
    - {name: a, duration: 30s, max_requests: 100, arrival: {process: gamma, rate: 5, shape: 0.8}}
    - name: b
      duration: 10s
      arrival: {process: onoff, rate_on: 40, rate_off: 0, "on": 1s, "off": 3s}
    - {name: c, duration: 10s, arrival: {process: ramp, from: 1, to: 5}}
    - {name: d, duration: 10s, arrival: {process: closed, concurrency: 2}}
"""


def test_phase_override_keeps_the_phase_alone_at_the_new_rate(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    loaded = load_scenario(path)
    override = phase_override(loaded, 0, 12.5, 2.0)
    phases = load_scenario(path, [override]).scenario.workload.phases
    assert len(phases) == 1
    (phase,) = phases
    assert (phase.name, phase.duration, phase.max_requests) == ("a", 2.0, None)
    assert phase.arrival.rate == 12.5 and phase.arrival.shape == 0.8  # type: ignore[union-attr]
    onoff = load_scenario(path, [phase_override(loaded, 1, 20.0, None)]).scenario
    arrival = onoff.workload.phases[0].arrival
    assert arrival.mean_rate(10.0) == pytest.approx(20.0)  # mean was 10: both rates doubled
    assert arrival.rate_on == 80  # type: ignore[union-attr]


@pytest.mark.parametrize(("index", "fix"), [(2, "sweep `from`/`to`"), (3, "concurrency")])
def test_phases_without_one_rate_are_refused(tmp_path: Path, index: int, fix: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    with pytest.raises(UsageError, match="no single arrival rate") as info:
        phase_override(load_scenario(path), index, 10.0, None)
    assert fix in str(info.value)
