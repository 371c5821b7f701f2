"""`faults:` in a whole `infbench run` against a launched command target (tests/servers/prefork.py):
the faults are done on time, the resilience section and console rows tell what they did, and
no process outlives the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from infbench.cli import app

PREFORK = str(Path(__file__).parents[1] / "servers" / "prefork.py")


def scenario(tmp_path: Path, faults: str, restart: str = "on-failure", seconds: float = 6) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(
        f"""version: 1
name: faults
target:
  kind: command
  command: ["{sys.executable}", "{PREFORK}", "{{port}}", "0.002"]
  url: "http://127.0.0.1:{{port}}"
  restart: {restart}
request: {{method: GET, path: /, timeout: 1s}}
workload:
  warmup: 1s
  phases:
    - {{name: steady, duration: {seconds}s, arrival: {{process: constant, rate: 40}}}}
faults:
{faults}
"""
    )
    return path


def invoke(tmp_path: Path, path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "out"
    # The resilience table fits the terminal, cutting cells to do so: render at 100 columns.
    runner = CliRunner(env={"COLUMNS": "100"})
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "-q", *extra])
    runs = list(out.glob("*/run.json"))
    return result.exit_code, json.loads(runs[0].read_text()) if runs else {}, result.output


def servers_on(port: int) -> list[int]:
    """Live processes of the test server still bound to ``port``'s command line."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if PREFORK in cmdline and str(port) in cmdline and proc.info["status"] != "zombie":
            found.append(proc.pid)
    return found


def port_of(run: dict[str, Any]) -> int:
    return int(run["target"]["base_url"].rsplit(":", 1)[1])


def test_killed_server_is_restarted_and_its_outage_measured(tmp_path: Path) -> None:
    code, run, output = invoke(tmp_path, scenario(tmp_path, "  - {at: 2s, action: kill_server}"))
    assert code == 0, output
    assert run["status"] == "complete"
    section = run["resilience"]
    (fault,) = section["faults"]
    assert fault["action"] == "kill_server" and fault["phase"] == "steady"
    assert abs(fault["time_s"] - 3.0) < 0.3  # 1 s warm-up + 2 s
    assert fault["pids"] and fault["error"] is None
    assert fault["baseline_p50_ms"] is not None
    assert fault["recovered"] is True and fault["recovery_s"] is not None
    assert fault["recovery_s"] < 3.0
    # 40 req/s, one each 25 ms, meet the server down while it starts again: some must fail
    assert fault["failed_requests"] > 0
    assert 0 <= fault["first_error_after_s"] < 1.0
    assert fault["error_window_s"] >= 0
    (restart,) = section["restarts"]
    assert restart["relaunched"] and restart["exit_code"] == -9 and restart["startup_s"] > 0
    assert restart["time_s"] >= fault["time_s"]
    assert "resilience" in output and "kill_server" in output
    assert "ready again after" in output
    assert any("exited with code -9" in w for w in run["warnings"])
    assert not servers_on(port_of(run))
    assert not (Path(run["result_dir"]) / "target.pid").exists()


def test_a_pause_shows_as_latency_and_recovers(tmp_path: Path) -> None:
    # Shorter than the 1 s request timeout: the requests wait, none fails.
    path = scenario(tmp_path, "  - {at: 1s, action: pause, duration: 0.6s}")
    code, run, output = invoke(tmp_path, path)
    assert code == 0, output
    (fault,) = run["resilience"]["faults"]
    assert abs((fault["end_s"] - fault["time_s"]) - 0.6) < 0.1
    assert len(fault["pids"]) == 2 and fault["failed_requests"] == 0
    assert fault["recovered"] and 0.5 <= fault["recovery_s"] < 3.5
    assert run["phases"][0]["latency_ms"]["max"] > 500  # requests waited out the pause
    assert run["resilience"]["restarts"] == []
    assert not servers_on(port_of(run))


def test_without_restart_the_dead_server_is_measured_and_reported(tmp_path: Path) -> None:
    path = scenario(tmp_path, "  - {at: 1s, action: kill_server}", restart="never", seconds=3)
    code, run, output = invoke(tmp_path, path)
    assert code == 0, output
    (fault,) = run["resilience"]["faults"]
    assert fault["failed_requests"] > 0 and fault["recovered"] is False
    assert run["errors_by_kind"].get("connect", 0) > 0
    (restart,) = run["resilience"]["restarts"]
    assert not restart["relaunched"]
    assert "never" in output and "not relaunched" in " ".join(run["warnings"])


def test_restart_and_kill_worker_in_one_run(tmp_path: Path) -> None:
    faults = "  - {at: 1s, action: kill_worker}\n  - {at: 3s, action: restart}"
    code, run, output = invoke(tmp_path, scenario(tmp_path, faults, seconds=6))
    assert code == 0, output
    worker, restart = run["resilience"]["faults"]
    assert len(worker["pids"]) == 1 and worker["error"] is None
    assert restart["end_s"] is not None and restart["end_s"] > restart["time_s"]
    assert [r["reason"] for r in run["resilience"]["restarts"]] == ["fault: restart"]
    assert not servers_on(port_of(run))


def test_kill_worker_without_workers_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(
        f"""version: 1
name: plain
target:
  kind: command
  command: ["{sys.executable}", "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
  url: "http://127.0.0.1:{{port}}"
request: {{method: GET, path: /, timeout: 1s}}
workload:
  phases:
    - {{name: p, duration: 1.5s, arrival: {{process: constant, rate: 10}}}}
faults:
  - {{at: 0.5s, action: kill_worker}}
"""
    )
    code, run, output = invoke(tmp_path, path)
    assert code == 0, output
    assert any("no worker process to kill" in w for w in run["warnings"])


@pytest.mark.parametrize(
    ("faults", "problem"),
    [
        ("  - {at: 9s, action: kill_server}", "past the measured phases' 6s"),
        ("  - {at: 5s, action: pause, duration: 2s}", "ends at 7s"),
        ("  - {at: 1s, action: pause}", "a pause needs `duration`"),
        ("  - {at: 1s, action: kill_server, duration: 1s}", "applies to pause only"),
        ("  - {at: 1s, action: explode}", "faults[0].action"),
        ("  - {at: -1s, action: kill_server}", "faults[0].at"),
    ],
)
def test_bad_faults_exit_2_before_any_load(tmp_path: Path, faults: str, problem: str) -> None:
    code, run, output = invoke(tmp_path, scenario(tmp_path, faults))
    assert code == 2 and problem in output and run == {}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_faults_need_a_launched_target(tmp_path: Path) -> None:
    path = tmp_path / "url.yaml"
    path.write_text(
        """version: 1
name: url
target: {kind: url, url: "http://127.0.0.1:9"}
workload:
  phases: [{name: p, duration: 2s, arrival: {process: constant, rate: 1}}]
faults: [{at: 1s, action: kill_server}]
"""
    )
    code, _, output = invoke(tmp_path, path)
    assert code == 2 and "faults need a server infbench launches" in output
    code, _, output = invoke(
        tmp_path,
        scenario(tmp_path, "  - {at: 1s, action: kill_server}"),
        "--url",
        "http://127.0.0.1:9",
    )
    assert code == 2 and "--url attaches to a server infbench did not launch" in output
