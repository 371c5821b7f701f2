"""`infbench run` end to end against the in-process fake server (target kind `url`)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer, free_port
from infbench.cli import app
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule

# Tables fit the terminal, cutting cells to do so; these tests read cells, so render at 100 columns.
runner = CliRunner(env={"COLUMNS": "100"})
QUICKSTART = Path(__file__).parents[2] / "scenarios" / "quickstart.yaml"
PHASE_KEYS = {
    "name", "process", "duration_s", "scheduled", "sent", "completed", "ok", "dropped", "errors",
    "offered_rps", "achieved_rps", "goodput_rps", "latency_ms", "service_ms", "lag_ms", "ttfb_ms",
}  # fmt: skip
RESULT_FILES = {
    "run.json", "summary.csv", "summary.md", "latency.hlog", "requests.csv.gz", "timeseries.csv",
}  # fmt: skip


@contextmanager
def server_process(delay_s: float) -> Iterator[str]:
    """The fake server in a process of its own, so its timing does not share our GIL."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from fakeserver import FakeServer\n"
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


def scenario(tmp_path: Path, url: str, phases: str, extra: str = "", warmup: str = "0s") -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        f"""version: 1
name: test
target: {{kind: url, url: "{url}"}}
request: {{method: POST, path: /classify, body: {{text: hello}}, timeout: 5s}}
{extra}
workload:
  seed: 11
  warmup: {warmup}
  phases:
{phases}
"""
    )
    return path


def invoke(path: Path, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "results"), *args])
    dirs = sorted((tmp_path / "results").glob("*")) if (tmp_path / "results").exists() else []
    run = None
    if dirs and (dirs[-1] / "run.json").exists():
        run = json.loads((dirs[-1] / "run.json").read_text())
    return result.exit_code, run, result.output


def test_three_phase_run_writes_the_contract(tmp_path: Path) -> None:
    with server_process(delay_s=0.02) as url:
        path = scenario(
            tmp_path,
            url,
            """    - {name: steady, duration: 2s, arrival: {process: poisson, rate: 40}}
    - {name: bursty, duration: 2s, arrival: {process: gamma, rate: 40, cv: 3}}
    - {name: ramp, duration: 2s, arrival: {process: ramp, from: 10, to: 60}}""",
            warmup="1s",
        )
        code, run, output = invoke(path, tmp_path)
    assert code == 0, output
    assert run is not None
    result_dir = Path(run["result_dir"])
    assert {p.name for p in result_dir.iterdir()} >= RESULT_FILES
    schedule = build_schedule(load_scenario(path).scenario.workload, tmp_path)
    expected = {plan.name: plan.scheduled for plan in schedule.phases}
    assert [p["name"] for p in run["phases"]] == ["steady", "bursty", "ramp"]
    for phase in run["phases"]:
        assert set(phase) >= PHASE_KEYS
        assert phase["scheduled"] == expected[phase["name"]]
        assert phase["completed"] + phase["dropped"] == phase["scheduled"]
        assert phase["ok"] == phase["scheduled"]
        # Never faster than the server's delay, and never below the service time it contains
        # (how close they are is a timing figure for benchmarks/, not for a shared test box).
        assert phase["latency_ms"]["p50"] >= 20.0
        for key in ("p50", "p99", "max"):
            assert phase["latency_ms"][key] >= phase["service_ms"][key]
    assert run["warmup"]["completed"] == expected["warmup"]
    assert run["schedule_sha256"] == schedule.sha256
    assert run["status"] == "complete"
    with gzip.open(result_dir / "requests.csv.gz", "rt") as rows:
        assert sum(1 for _ in rows) == 1 + sum(expected.values())
    timeseries = (result_dir / "timeseries.csv").read_text().splitlines()
    assert timeseries[0].startswith("second,phase,offered,sent,completed")
    assert len(timeseries) >= 7
    assert "steady" in output and "p99" in output


def test_coordinated_omission_is_corrected(tmp_path: Path) -> None:
    """A 1 s stall under open-loop load with 4 connections: latency p99 shows the stall,
    service p99 does not, and no arrival is lost."""
    with FakeServer(delay_s=0.005) as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 4s, arrival: {process: constant, rate: 100}}",
            extra="client: {connections: 4}",
        )
        server.stall(start_after_s=1.6, duration_s=1.0)
        code, run, output = invoke(path, tmp_path)
        received = server.count("/classify")
    assert code == 0, output
    assert run is not None
    phase = run["phases"][0]
    assert phase["scheduled"] == 400
    assert phase["ok"] == 400 and phase["dropped"] == 0 and received == 400
    assert phase["latency_ms"]["p99"] >= 900.0
    assert phase["service_ms"]["p99"] < 100.0
    assert phase["latency_ms"]["p99"] > 10 * phase["service_ms"]["p99"]


def test_connection_cap_drops_are_counted(tmp_path: Path) -> None:
    with FakeServer(delay_s=3.0) as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 1s, arrival: {process: constant, rate: 20}}",
            extra="client: {connections: 1}",
        )
        path.write_text(path.read_text().replace("timeout: 5s", "timeout: 1s"))
        _, run, output = invoke(path, tmp_path)
    assert run is not None, output
    phase = run["phases"][0]
    assert phase["dropped"] > 0
    assert phase["completed"] + phase["dropped"] == phase["scheduled"] == 20
    assert phase["errors"].get("timeout", 0) >= 1
    assert not run["valid"] and any("dropped" in r for r in run["invalid_reasons"])


def test_errors_are_classified(tmp_path: Path) -> None:
    with FakeServer(status=(200, 200, 200, 503)) as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 1s, arrival: {process: constant, rate: 40}}",
        )
        code, run, output = invoke(path, tmp_path)
    assert code == 0, output
    assert run is not None
    phase = run["phases"][0]
    assert phase["errors"] == {"http_5xx": 10}
    assert phase["status_codes"] == {"200": 30, "503": 10}
    assert phase["error_rate"] == 0.25


def test_closed_loop(tmp_path: Path) -> None:
    with FakeServer(delay_s=0.02) as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: closed, duration: 2s, arrival: {process: closed, concurrency: 4}}",
        )
        code, run, output = invoke(path, tmp_path)
        received = server.count("/classify")
    assert code == 0, output
    assert run is not None
    phase = run["phases"][0]
    assert phase["process"] == "closed"
    # Little's law: 4 workers each waiting one latency per request (the busy test machine
    # decides how long that is, so the rate is checked against the measured latency)
    expected = 4 / (phase["latency_ms"]["mean"] / 1000)
    assert 0.85 * expected <= phase["achieved_rps"] <= 1.05 * expected
    assert phase["achieved_rps"] <= 4 / 0.02
    assert phase["completed"] == received
    assert server.max_in_flight <= 4


def test_slo_failure_exits_1(tmp_path: Path) -> None:
    with FakeServer(delay_s=0.03) as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 1s, arrival: {process: constant, rate: 20}}",
            extra="slo: {p99: 10ms}",
        )
        code, run, output = invoke(path, tmp_path)
    assert code == 1
    assert "p99" in output and "FAILED" in output
    assert run is not None and run["slo"][0]["passed"] is False


def test_json_output_is_run_json(tmp_path: Path) -> None:
    with FakeServer() as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 1s, arrival: {process: constant, rate: 10}}",
        )
        result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["phases"][0]["scheduled"] == 10
    assert data["format_version"] == 1


def test_broken_scenario_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "http://127.0.0.1:9",
        "    - {name: steady, duration: 1s, arrival: {process: gamma, rate: 10, cv: -3}}",
    )
    code, run, output = invoke(path, tmp_path)
    assert code == 2
    assert "workload.phases[0].arrival.cv" in output and "scenario.yaml:" in output
    assert run is None


def test_url_override_attaches_elsewhere(tmp_path: Path) -> None:
    with FakeServer() as server:
        path = scenario(
            tmp_path,
            "http://127.0.0.1:9",
            "    - {name: steady, duration: 1s, arrival: {process: constant, rate: 10}}",
        )
        code, _, output = invoke(path, tmp_path, "--url", server.url)
        assert code == 0, output
        assert server.count("/classify") == 10


def test_attaching_to_a_closed_port_exits_3_within_seconds(tmp_path: Path) -> None:
    """`infbench run scenarios/quickstart.yaml --url <nothing listening>`: the readiness
    timeout is 120 s, but refused connections end the wait after a few seconds."""
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, run, output = invoke(QUICKSTART, tmp_path, "--url", closed)
    assert time.monotonic() - started < 30
    assert code == 3 and run is None, output
    text = " ".join(output.split())  # rich wraps long lines
    assert f"{closed}/readyz refused every connection for 3 s" in text
    assert "start the server, or check the host and port of --url" in text
    assert f"waiting for {closed}/readyz to answer 200 (last: connection refused," in text
    code, _, output = invoke(QUICKSTART, tmp_path, "--url", closed, "--quiet")
    text = " ".join(output.split())
    assert code == 3 and "refused every connection" in text and "waiting for" not in text


def run_with(
    tmp_path: Path, seconds: float, after: int, action: Callable[[], None]
) -> tuple[int, dict[str, Any] | None, str]:
    """A constant 20/s run against the fake server; ``action`` done once it has answered
    ``after`` requests (the load is on: a timer would race the start-up on a busy machine)."""
    with FakeServer(delay_s=0.01) as server:
        arrival = "{process: constant, rate: 20}"
        phases = f"    - {{name: steady, duration: {seconds}s, arrival: {arrival}}}"
        path = scenario(tmp_path, server.url, phases)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.01):
                if server.count() >= after:
                    action()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            return invoke(path, tmp_path)
        finally:
            done.set()
            watcher.join()


def _signal_recorder(sig: signal.Signals, also_self: bool) -> None:
    """Signal this process's recorder child (as a terminal's Ctrl-C signals the whole group)."""
    for child in psutil.Process().children():
        if "spawn_main" in " ".join(child.cmdline()):
            child.send_signal(sig)
    if also_self:
        os.kill(os.getpid(), sig)


def test_interrupt_keeps_partial_results(tmp_path: Path) -> None:
    code, run, output = run_with(tmp_path, 20, 20, lambda: os.kill(os.getpid(), signal.SIGINT))
    assert code == 130, output
    assert run is not None and run["status"] == "interrupted"
    phase = run["phases"][0]
    assert 10 <= phase["completed"] <= 60


def test_ctrl_c_to_the_process_group_keeps_every_recorded_request(tmp_path: Path) -> None:
    code, run, output = run_with(tmp_path, 20, 20, lambda: _signal_recorder(signal.SIGINT, True))
    assert code == 130, output
    assert run is not None and run["status"] == "interrupted"
    with gzip.open(Path(run["result_dir"]) / "requests.csv.gz", "rt") as rows:
        recorded = sum(1 for _ in rows) - 1
    assert recorded == sum(p["completed"] + p["dropped"] for p in run["phases"]) > 10


def test_a_recorder_that_dies_fails_the_run_and_keeps_what_it_wrote(tmp_path: Path) -> None:
    code, run, output = run_with(tmp_path, 6, 40, lambda: _signal_recorder(signal.SIGKILL, False))
    assert code == 4, output
    assert run is not None and run["status"] == "failed" and not run["valid"]
    assert "recording failed" in run["invalid_reasons"][0]
    assert "recording failed" in " ".join(output.split())
    assert (Path(run["result_dir"]) / "latency.hlog").stat().st_size > 0


def test_validate_previews_phases(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "http://127.0.0.1:9",
        """    - {name: steady, duration: 10s, arrival: {process: constant, rate: 5}}
    - {name: loop, duration: 10s, arrival: {process: closed, concurrency: 3}}""",
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "steady" in result.output and "50" in result.output and "5.00" in result.output
    assert "closed loop, 3 workers" in result.output
    bad = runner.invoke(app, ["validate", str(path), "--set", "client.connections=0"])
    assert bad.exit_code == 2 and "client.connections" in bad.output


def test_schema_is_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "infbench scenario v1"
    assert "workload" in schema["properties"]


@pytest.mark.parametrize("sender", ["aiohttp", "httpx"])
def test_each_sender_runs_a_scenario(tmp_path: Path, sender: str) -> None:
    with FakeServer() as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 1s, arrival: {process: poisson, rate: 30}}",
            extra=f"client: {{sender: {sender}}}",
        )
        code, run, output = invoke(path, tmp_path)
    assert code == 0, output
    assert run is not None and run["phases"][0]["ok"] == run["phases"][0]["scheduled"]


def test_repeat_writes_runs_and_an_exact_aggregate(tmp_path: Path) -> None:
    with FakeServer(delay_s=0.005) as server:
        path = scenario(
            tmp_path,
            server.url,
            "    - {name: steady, duration: 1s, arrival: {process: poisson, rate: 30}}",
        )
        code, run, output = invoke(path, tmp_path, "--repeat", "3")
    assert code == 0, output
    assert run is not None
    assert run["repetitions"] == ["run-1", "run-2", "run-3"]
    root = Path(run["result_dir"])
    children = [json.loads((root / name / "run.json").read_text()) for name in run["repetitions"]]
    merged, parts = run["phases"][0], [child["phases"][0] for child in children]
    assert merged["completed"] == sum(p["completed"] for p in parts)
    assert merged["scheduled"] == sum(p["scheduled"] for p in parts)
    assert merged["duration_s"] == 3.0
    # merged percentiles lie within the runs' range: histograms added, not averaged
    lows = min(p["latency_ms"]["p50"] for p in parts)
    highs = max(p["latency_ms"]["p50"] for p in parts)
    assert lows <= merged["latency_ms"]["p50"] <= highs
    assert merged["latency_ms"]["max"] == max(p["latency_ms"]["max"] for p in parts)
    assert (root / "summary.csv").exists() and not (root / "timeseries.csv").exists()
