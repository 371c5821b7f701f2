"""Gate rules: the scenario's absolute SLOs and compare's --fail-on / gate-file rules."""

from __future__ import annotations

import pytest

from infbench.analysis.metrics import COMPARE_METRICS
from infbench.analysis.slo import check_run, parse_slo
from infbench.compare.comparison import CompareSettings, Comparison, MetricComparison
from infbench.compare.gate import CompareRule, check_comparison, parse_gate_file, parse_rule
from infbench.errors import ScenarioError, UsageError
from infbench.results.records import PhaseSummary

# --- slo: on one run (unchanged behaviour the runner relies on) ----------------------------


def phase(name: str = "steady", p99: float | None = 20.0, error_rate: float = 0.0) -> PhaseSummary:
    return PhaseSummary.from_json(
        {
            "name": name,
            "latency_ms": {"p99": p99},
            "error_rate": error_rate,
            "achieved_rps": 100.0,
        }
    )


def test_slo_rules_check_each_phase() -> None:
    rules = parse_slo({"p99": "250ms", "error_rate": "1%", "achieved_rps": 50})
    assert [(r.metric, r.threshold) for r in rules] == [
        ("p99", 250.0),
        ("error_rate", 0.01),
        ("achieved_rps", 50.0),
    ]
    results = check_run(rules, [phase(p99=300.0), phase("ramp", p99=None)])
    assert [r.passed for r in results] == [False, True, True, False, True, True]
    assert "FAILED" in results[0].message


def test_unknown_slo_metric_names_the_choices() -> None:
    with pytest.raises(ScenarioError, match=r"slo\.p98: unknown metric; choose from p50"):
        parse_slo({"p98": "1s"})


# --- --fail-on rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "kind", "threshold"),
    [
        ("p99=+10%", "p99", "relative", 0.10),
        ("p999 = +2.5%", "p999", "relative", 0.025),
        ("achieved_rps=-5%", "achieved_rps", "relative", 0.05),
        ("error_rate=0.5%", "error_rate", "absolute", 0.005),
        ("error_rate=0.01", "error_rate", "absolute", 0.01),
        ("p99=250ms", "p99", "absolute", 250.0),
        ("goodput_rps=100", "goodput_rps", "absolute", 100.0),
        ("server_cpu_pct=80%", "server_cpu_pct", "absolute", 80.0),
    ],
)
def test_rules_parse(text: str, metric: str, kind: str, threshold: float) -> None:
    rule = parse_rule(text)
    assert (rule.metric, rule.kind, rule.text) == (metric, kind, text)
    assert rule.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("p99", "expected METRIC=THRESHOLD"),
        ("p99=", "expected METRIC=THRESHOLD"),
        ("p98=+10%", "unknown metric 'p98'; choose from p50"),
        ("p99=10%", r"needs its sign: p99=\+10%"),
        ("p99=-10%", r"lower is better for p99.*p99=\+10%"),
        ("achieved_rps=+5%", r"higher is better.*achieved_rps=-5%"),
        ("error_rate=+1%", "error_rate rules are absolute"),
        ("p99=+ten%", "a signed threshold is a percentage"),
        ("p99=fast", "expected a duration"),
        ("error_rate=2", "error_rate is a fraction"),
    ],
)
def test_bad_rules_name_the_flag_and_the_syntax(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        parse_rule(text)
    assert f"--fail-on {text!r}" in str(caught.value)
    assert "METRIC=+N%" in str(caught.value)  # the hint shows the syntax


# --- gate files -----------------------------------------------------------------------------


def test_gate_file() -> None:
    config = parse_gate_file(
        "rules: {p99: +10%, error_rate: 0.5%, achieved_rps: -5%}\n"
        "phases: [steady]\nnoise: 3%\nerror_rate_noise: 0.2%\n",
        "gate.yaml",
    )
    assert [r.text for r in config.rules] == ["p99=+10%", "error_rate=0.5%", "achieved_rps=-5%"]
    assert config.phases == ("steady",)
    assert config.noise == pytest.approx(0.03)
    assert config.error_rate_noise == pytest.approx(0.002)
    listed = parse_gate_file("rules: ['p99=+10%']\n", "gate.yaml")
    assert listed.rules[0].metric == "p99" and listed.phases is None and listed.noise is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: [", "not valid YAML"),
        ("p99: +10%", "expected a mapping with `rules:`"),
        ("rules: {p99: +10%}\nphase: [steady]", "unknown key 'phase'"),
        ("rules: {p99: 10%}", r"gate\.yaml: rules: --fail-on 'p99=10%'"),
        ("rules: 3", "`rules` must be a mapping"),
        ("rules: {p99: +10%}\nphases: steady", "`phases` must be a list"),
        ("rules: {p99: +10%}\nnoise: 150%", "noise: must lie between"),
        ("rules: {p99: +10%}\nnoise: loud", "noise: expected a percentage"),
    ],
)
def test_bad_gate_files_name_the_file(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        parse_gate_file(text, "gate.yaml")
    assert "gate.yaml" in str(caught.value)


# --- rules on a comparison ----------------------------------------------------------------


def row(
    metric: str,
    base: float | None,
    cand: float | None,
    *,
    tested: bool = True,
    significant: bool = True,
    phase_name: str = "steady",
) -> MetricComparison:
    spec = COMPARE_METRICS[metric]
    change = None
    if base is not None and cand is not None:
        change = cand - base if spec.absolute else cand / base - 1
    ci = (change - 0.01, change + 0.01) if tested and change is not None else None
    p = (0.001 if significant else 0.5) if tested else None
    return MetricComparison(
        phase_name, metric, base, cand, change, ci, p, (30, 30), "bootstrap", "~", significant
    )


def comparison(*rows: MetricComparison) -> Comparison:
    phases = tuple(dict.fromkeys(r.phase for r in rows))
    return Comparison("b", "c", "bootstrap", (1, 1), CompareSettings(), phases, rows, ())


def check(rule: str, *rows: MetricComparison) -> tuple[bool, str]:
    (result,) = check_comparison([parse_rule(rule)], comparison(*rows))
    return result.passed, result.basis


def test_relative_rule_fails_only_on_a_significant_change_beyond_it() -> None:
    assert check("p99=+10%", row("p99", 20.0, 25.0)) == (False, "significant")
    assert check("p99=+10%", row("p99", 20.0, 21.0)) == (True, "significant")
    assert check("p99=+10%", row("p99", 20.0, 25.0, significant=False)) == (
        True,
        "not significant",
    )
    assert check("p99=+10%", row("p99", 20.0, 15.0)) == (True, "significant")  # better


def test_relative_rule_falls_back_on_the_point_estimate_when_untested() -> None:
    assert check("p99=+10%", row("p99", 20.0, 25.0, tested=False)) == (False, "point estimate")
    assert check("p99=+10%", row("p99", 20.0, 21.0, tested=False)) == (True, "point estimate")


def test_rate_rules_look_at_drops() -> None:
    assert check("achieved_rps=-5%", row("achieved_rps", 100.0, 90.0)) == (False, "significant")
    assert check("achieved_rps=-5%", row("achieved_rps", 100.0, 120.0))[0]
    assert not check("goodput_rps=100", row("goodput_rps", 120.0, 90.0))[0]


def test_absolute_rules_judge_the_candidate() -> None:
    assert check("error_rate=0.5%", row("error_rate", 0.0, 0.004, significant=False))[0]
    assert check("error_rate=0.5%", row("error_rate", 0.0, 0.006)) == (False, "absolute")
    assert not check("p99=250ms", row("p99", 200.0, 251.0, tested=False))[0]


def test_missing_data_fails_the_rule() -> None:
    assert check("p99=+10%", row("p99", 20.0, None)) == (False, "no data")
    results = check_comparison(
        [parse_rule("p99=+10%")], comparison(row("p99", 20.0, 20.0)), phases=("steady", "ramp")
    )
    assert [(r.phase, r.passed, r.basis) for r in results] == [
        ("steady", True, "significant"),
        ("ramp", False, "no data"),
    ]


def test_a_gate_that_checks_nothing_fails() -> None:
    (result,) = check_comparison([parse_rule("p99=+10%")], comparison())
    assert (result.phase, result.passed, result.basis) == ("(no phase)", False, "no data")
    assert parse_rule("p99=+0%").threshold == 0  # any significant rise fails


def test_rules_apply_to_every_shared_phase_and_say_why() -> None:
    rows = (row("p99", 20.0, 20.2), row("p99", 30.0, 40.0, phase_name="ramp"))
    results = check_comparison([CompareRule("p99", "relative", 0.1, "p99=+10%")], comparison(*rows))
    assert [r.passed for r in results] == [True, False]
    assert results[1].message == "ramp: p99=+10%: 30.00 ms → 40.00 ms (+33.3%, significant): FAILED"


def test_metric_formats() -> None:
    assert COMPARE_METRICS["p99"].format(0.5321) == "532.1 µs"  # the unit adapts
    assert COMPARE_METRICS["p99"].format(1234.5) == "1.234 s"
    assert COMPARE_METRICS["achieved_rps"].format(143.75) == "143.8/s"
    assert COMPARE_METRICS["error_rate"].format(0.0123) == "1.23%"
    assert COMPARE_METRICS["error_rate"].format_change(0.001) == "+0.10pp"
    assert COMPARE_METRICS["p50"].format_change(-0.0412) == "-4.1%"
    assert COMPARE_METRICS["p50"].format(None) == "–"
