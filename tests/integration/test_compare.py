"""`infbench compare` end to end: golden output, the CLI's exit codes, loading and warnings,
and two real runs against the fake server compared as docs/ci.md does.

Golden files live in tests/golden/expected; INFBENCH_UPDATE_GOLDEN=1 rewrites them (review
the diff). The result directories they come from are checked in under tests/golden and were
made by tests/golden/make_results.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infbench.cli import app
from infbench.commands.compare import run_compare
from infbench.compare.comparison import compare
from infbench.errors import GateFailed

GOLDEN = Path(__file__).parent.parent / "golden"
EXPECTED = GOLDEN / "expected"
UPDATE = os.environ.get("INFBENCH_UPDATE_GOLDEN") == "1"
runner = CliRunner()

CASES = {
    "aa": ("base", "cand", []),
    "slow": ("base", "cand-slow", ["p99=+10%", "error_rate=2%", "achieved_rps=-5%"]),
    "repeat": ("rep-base", "rep-cand", ["p50=+10%"]),
}


def render(case: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The command's output for a golden case, with relative paths so it is portable."""
    monkeypatch.chdir(GOLDEN)
    base, cand, rules = CASES[case]
    console = Console(file=StringIO(), width=100, color_system=None)
    try:
        run_compare(
            Path(base),
            Path(cand),
            fmt=fmt,
            fail_on=rules,
            gate_file=None,
            junit=None,
            html=None,
            seed=1,
            console=console,
        )
        ending = "exit 0\n"
    except GateFailed as exc:
        ending = f"exit {exc.exit_code}: {exc}\n"
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return output + ("" if fmt == "json" else ending)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_golden_output(case: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = {"table": "txt", "markdown": "md", "json": "json"}[fmt]
    expected = EXPECTED / f"{case}.{suffix}"
    output = render(case, fmt, monkeypatch)
    if UPDATE:
        EXPECTED.mkdir(exist_ok=True)
        expected.write_text(output, encoding="utf-8")
    assert output == expected.read_text(encoding="utf-8"), (
        f"{expected} differs; if the change is intended, rerun with INFBENCH_UPDATE_GOLDEN=1"
    )


def test_json_is_machine_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.loads(render("slow", "json", monkeypatch))
    assert list(document) == [
        "infbench_compare", "base", "candidate", "method", "n_unit", "repetitions", "settings",
        "phases", "rows", "warnings", "gate",
    ]  # fmt: skip
    p99 = next(r for r in document["rows"] if r["phase"] == "steady" and r["metric"] == "p99")
    assert p99["verdict"] == "worse" and p99["ci95"][0] > 0 and p99["p_value"] < 0.05
    assert document["gate"]["passed"] is False


# --- the CLI ------------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["compare", *args])
    return result.exit_code, result.output


def test_same_configuration_exits_0_and_shows_no_change() -> None:
    code, output = cli(str(GOLDEN / "base"), str(GOLDEN / "cand"), "--fail-on", "p99=+10%")
    assert code == 0, output
    assert "~" in output and "worse" not in output and "gate passed" in output


def test_a_slower_candidate_exits_1_naming_the_rule() -> None:
    code, output = cli(str(GOLDEN / "base"), str(GOLDEN / "cand-slow"), "--fail-on", "p99=+10%")
    assert code == 1, output
    assert "gate failed: 2 of 2 rule checks" in output
    assert "steady: p99=+10%: 29.12 ms → 34.62 ms (+18.9%, significant): FAILED" in output


def test_gate_file_and_junit(tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text("rules: {p99: +10%, error_rate: 5%}\nphases: [steady]\n")
    junit = tmp_path / "junit.xml"
    code, output = cli(
        str(GOLDEN / "base"), str(GOLDEN / "cand-slow"), "--gate", str(gate), "--junit", str(junit)
    )
    assert code == 1, output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("infbench.compare.steady", "p99=+10%"),
        ("infbench.compare.steady", "error_rate=5%"),
    ]
    assert [c.find("failure") is not None for c in cases] == [True, False]
    assert suite.get("failures") == "1" and suite.get("tests") == "2"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--fail-on", "p99=10"], "--fail-on 'p99=10'"),
        (["--fail-on", "latency=+10%"], "unknown metric 'latency'"),
        (["--format", "html"], "--format 'html': choose one of table, markdown, json"),
        (["--seed", "-1"], "--seed -1: must be 0 or more"),
        (["--gate", "/nonexistent/gate.yaml"], "--gate /nonexistent/gate.yaml: cannot read"),
        (["--junit", "/nonexistent/dir/j.xml"], "--junit /nonexistent/dir/j.xml: cannot write"),
    ],
)
def test_usage_errors_exit_2(args: list[str], problem: str) -> None:
    code, output = cli(str(GOLDEN / "base"), str(GOLDEN / "cand"), *args)
    assert code == 2
    assert problem in " ".join(output.split())


def test_html_writes_the_comparison_page(tmp_path: Path) -> None:
    page = tmp_path / "compare.html"
    code, output = cli(str(GOLDEN / "base"), str(GOLDEN / "cand"), "--html", str(page))
    assert code == 0, output
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


# --- loading result directories -----------------------------------------------------------


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(GOLDEN / name, target)
    return target


def edit_run(path: Path, **changes: object) -> None:
    data = json.loads((path / "run.json").read_text())
    data.update(changes)
    (path / "run.json").write_text(json.dumps(data))


def test_unknown_format_version_names_both_versions(tmp_path: Path) -> None:
    cand = copy("cand", tmp_path)
    edit_run(cand, format_version=99)
    code, output = cli(str(GOLDEN / "base"), str(cand))
    text = " ".join(output.split())
    assert code == 2 and "format version 99 is not supported" in text and "reads versions 1" in text


def test_truncated_run_json_names_the_file(tmp_path: Path) -> None:
    cand = copy("cand", tmp_path)
    (cand / "run.json").write_text((cand / "run.json").read_text()[:200])
    code, output = cli(str(GOLDEN / "base"), str(cand))
    assert code == 2 and "run.json: corrupt or truncated JSON" in " ".join(output.split())


def test_malformed_phase_names_the_file(tmp_path: Path) -> None:
    cand = copy("cand", tmp_path)
    edit_run(cand, phases=[{"name": "steady"}, 3])
    code, output = cli(str(GOLDEN / "base"), str(cand))
    assert code == 2 and "run.json: phases[0] (steady): `scheduled` is missing" in " ".join(
        output.split()
    )


def test_truncated_interval_log_names_the_file_and_line(tmp_path: Path) -> None:
    cand = copy("cand", tmp_path)
    log = cand / "latency.hlog"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:9]) + lines[9][:40])
    code, output = cli(str(GOLDEN / "base"), str(cand))
    assert code == 2 and "latency.hlog:10:" in "".join(output.split("\n"))


def test_missing_repetition_names_it(tmp_path: Path) -> None:
    reps = copy("rep-cand", tmp_path)
    shutil.rmtree(reps / "run-3")
    code, output = cli(str(GOLDEN / "rep-base"), str(reps))
    assert code == 2 and "run-3" in output and "not a result directory" in output


def codes(base: Path, cand: Path) -> list[str]:
    return [w.code for w in compare(base, cand).warnings]


def test_warnings_travel_with_the_comparison(tmp_path: Path) -> None:
    cand = copy("cand", tmp_path)
    data = json.loads((cand / "run.json").read_text())
    environment = {**data["environment"], "cores": 64, "versions": {"aiohttp": "3.10.0"}}
    edit_run(
        cand,
        schedule_sha256="c" * 64,
        scenario_sha256="d" * 64,
        scenario={"name": "synthetic", "slo": {"p99": "1s"}},
        environment=environment,
        valid=False,
        invalid_reasons=["phase steady: send lag p99 3 ms exceeds 1 ms"],
        status="interrupted",
        phases=data["phases"][:1],
    )
    warnings = compare(GOLDEN / "base", cand).warnings
    assert [w.code for w in warnings] == [
        "invalid-run",
        "interrupted-run",
        "scenario-differs",
        "schedule-differs",
        "environment-differs",
        "phase-missing",
        "few-samples",
    ]
    text = "\n".join(w.message for w in warnings)
    assert "(in slo.p99)" in text and "cores 4 vs 64" in text and "numpy 2.0.0 vs None" in text
    assert "phase bursty is only in the base run" in text


def test_few_repetitions_fall_back_on_the_bootstrap(tmp_path: Path) -> None:
    reps = copy("rep-cand", tmp_path)
    edit_run(reps, repetitions=["run-1", "run-2"])
    comparison = compare(GOLDEN / "rep-base", reps)
    assert comparison.method == "bootstrap" and comparison.repetitions == (4, 2)
    assert "few-repetitions" in [w.code for w in comparison.warnings]


# --- two real runs, compared the way docs/ci.md does it -----------------------------------


@contextmanager
def server_process(delay_s: float) -> Iterator[str]:
    """The fake server in a process of its own, so its timing does not share our GIL."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from fakeserver import FakeServer\n"
        f"with FakeServer(delay_s={delay_s}) as s:\n"
        "    print(s.url, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    tests_dir = str(Path(__file__).parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, tests_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


SCENARIO = """version: 1
name: ci
target: {{kind: url, url: "{url}"}}
request: {{method: POST, path: /classify, body: {{text: hello}}, timeout: 5s}}
workload:
  seed: 5
  warmup: 0.5s
  phases:
    - {{name: steady, duration: 5s, arrival: {{process: poisson, rate: 240}}}}
"""


@pytest.mark.slow
def test_real_runs_same_config_passes_and_slower_server_fails(tmp_path: Path) -> None:
    """The issue's "done when", with the commands of docs/ci.md (runs in their own process,
    as in CI, so the generator does not share pytest's interpreter)."""
    results = tmp_path / "results"
    dirs = []
    for label, delay in (("base", 0.02), ("same", 0.02), ("slow", 0.025)):
        with server_process(delay_s=delay) as url:
            path = tmp_path / f"{label}.yaml"
            path.write_text(SCENARIO.format(url=url))
            run = [str(Path(sys.executable).with_name("infbench")), "run", str(path), "-q"]
            done = subprocess.run([*run, "--out", str(results / label)], capture_output=True)
            assert done.returncode == 0, done.stderr
        (run_dir,) = (results / label).iterdir()
        dirs.append(str(run_dir))
    code, output = cli(dirs[0], dirs[1], "--fail-on", "p99=+10%", "--format", "json")
    assert code == 0, output
    document = json.loads(output)
    p50 = next(r for r in document["rows"] if r["metric"] == "p50")
    assert p50["verdict"] == "~"
    code, output = cli(dirs[0], dirs[2], "--fail-on", "p99=+10%", "--fail-on", "p50=+10%")
    assert code == 1, output
    assert "steady: p50=+10%:" in output and "FAILED" in output
