"""Crash safety: servers outliving a SIGKILLed infbench are found by their pid files and
stopped by the next `infbench run` or by `infbench cleanup`; a recycled pid is never touched;
a (nearly) full results location is refused before any load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app
from infbench.results import rundir as results_module
from proctools import alive, wait_for

PREFORK = str(Path(__file__).parents[1] / "servers" / "prefork.py")
runner = CliRunner()


def command_scenario(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / "crash.yaml"
    path.write_text(
        f"""version: 1
name: crash
target:
  kind: command
  command: ["{sys.executable}", "{PREFORK}", "{{port}}"]
  url: "http://127.0.0.1:{{port}}"
request: {{method: GET, path: /, timeout: 1s}}
workload:
  phases:
    - {{name: p, duration: {seconds}s, arrival: {{process: constant, rate: 10}}}}
"""
    )
    return path


def killed_run(tmp_path: Path) -> tuple[Path, list[int]]:
    """Start `infbench run`, SIGKILL it mid-load; returns the results root and server pids."""
    root = tmp_path / "results"
    argv = [sys.executable, "-m", "infbench", "run", str(command_scenario(tmp_path, 60))]
    proc = subprocess.Popen(
        [*argv, "--out", str(root), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: any(root.glob("*/timeseries.csv")), 60), "load never started"
        (pid_file,) = root.glob("*/target.pid")
        pids = [p["pid"] for p in json.loads(pid_file.read_text())["processes"]]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert len(pids) == 2 and alive(pids) == pids, "the servers should outlive a SIGKILL"
    return root, pids


def test_cleanup_stops_the_servers_of_a_killed_infbench(tmp_path: Path) -> None:
    root, pids = killed_run(tmp_path)
    result = runner.invoke(app, ["cleanup", str(root)])
    assert result.exit_code == 0, result.output
    assert wait_for(lambda: not alive(pids))
    assert "stopped 2 server process(es)" in result.output and "killed" in result.output
    assert not list(root.glob("*/target.pid"))
    again = runner.invoke(app, ["cleanup", str(root)])
    assert "nothing to clean up" in again.output


def test_the_next_run_stops_them_and_says_so(tmp_path: Path) -> None:
    root, pids = killed_run(tmp_path)
    with FakeServer() as server:
        path = tmp_path / "next.yaml"
        path.write_text(
            f"""version: 1
name: next
target: {{kind: url, url: "{server.url}"}}
workload:
  phases: [{{name: p, duration: 0.2s, arrival: {{process: constant, rate: 10}}}}]
"""
        )
        result = runner.invoke(app, ["run", str(path), "--out", str(root), "-q"])
    assert result.exit_code == 0, result.output
    assert "cleanup:" in result.output and "stopped 2 server process(es)" in result.output
    assert wait_for(lambda: not alive(pids))


def write_pid_file(
    path: Path, owner: dict[str, float] | None, procs: list[dict[str, float]]
) -> None:
    path.parent.mkdir(parents=True)
    data = {"version": 1, "owner": owner, "argv0": "x", "port": None, "processes": procs}
    path.write_text(json.dumps(data))


@pytest.fixture
def bystander() -> psutil.Process:
    """A process that is not a server of ours (stands in for a recycled pid)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield psutil.Process(proc.pid)
    proc.kill()
    proc.wait()


def test_a_recycled_pid_is_never_signalled(tmp_path: Path, bystander: psutil.Process) -> None:
    pid_file = tmp_path / "results" / "run-a" / "target.pid"
    dead_owner = {"pid": 999_999_999, "create_time": 1.0}
    wrong = {"pid": bystander.pid, "create_time": bystander.create_time() - 100.0}
    write_pid_file(pid_file, dead_owner, [wrong])
    result = runner.invoke(app, ["cleanup", str(tmp_path / "results")])
    assert result.exit_code == 0
    assert bystander.is_running() and bystander.status() != psutil.STATUS_ZOMBIE
    assert "already exited" in result.output and not pid_file.exists()


def test_servers_of_a_running_infbench_are_left_alone(
    tmp_path: Path, bystander: psutil.Process
) -> None:
    pid_file = tmp_path / "results" / "run-b" / "target.pid"
    owner = {"pid": os.getppid(), "create_time": psutil.Process(os.getppid()).create_time()}
    me = {"pid": bystander.pid, "create_time": bystander.create_time()}
    write_pid_file(pid_file, owner, [me])
    result = runner.invoke(app, ["cleanup", str(tmp_path / "results")])
    assert "nothing to clean up" in result.output
    assert bystander.is_running() and pid_file.exists()


def test_an_unreadable_pid_file_is_reported_not_acted_on(tmp_path: Path) -> None:
    pid_file = tmp_path / "results" / "run-c" / "target.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("{not json")
    result = runner.invoke(app, ["cleanup", str(tmp_path / "results")])
    assert "left alone, the pid file is unreadable" in result.output and pid_file.exists()


Usage = namedtuple("Usage", "total used free")


def url_scenario(tmp_path: Path, url: str, rate: float = 10) -> Path:
    path = tmp_path / "disk.yaml"
    path.write_text(
        f"""version: 1
name: disk
target: {{kind: url, url: "{url}"}}
workload:
  phases: [{{name: p, duration: 0.5s, arrival: {{process: constant, rate: {rate}}}}}]
"""
    )
    return path


def test_a_full_results_location_is_refused_before_any_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results_module.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 10**6))
    with FakeServer() as server:
        path = url_scenario(tmp_path, server.url)
        result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
        assert server.count() == 0
    assert result.exit_code == 2
    assert "only 1 MB free" in result.output and "--out" in result.output
    assert not list((tmp_path / "out").iterdir())


def test_little_free_space_is_a_warning_in_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = results_module.MIN_FREE_BYTES + 1000  # allowed, but 40 rows would not fit
    monkeypatch.setattr(results_module.shutil, "disk_usage", lambda p: Usage(10**10, 0, free))
    with FakeServer() as server:
        path = url_scenario(tmp_path, server.url, rate=100)
        result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "may fail to write its results" in result.output
    (run_json,) = (tmp_path / "out").glob("*/run.json")
    assert any("may fail to write" in w for w in json.loads(run_json.read_text())["warnings"])
