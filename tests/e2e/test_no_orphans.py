"""No server process outlives `infbench run`: after a normal end, Ctrl-C, SIGTERM (during the
load and during start-up) and an exception inside infbench. Real `bentoml serve` each time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from infbench.cli import app
from infbench.commands import run as run_command
from infbench.targets.process import port_is_free
from proctools import alive, wait_for

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
INFBENCH = [sys.executable, "-m", "infbench"]


def scenario(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / "orphans.yaml"
    path.write_text(
        f"""version: 1
name: orphans
target: {{kind: bentoml, service: "{SCENARIOS}/services/sentiment:Sentiment", workers: 2}}
request: {{path: /classify, body: {{text: "fine"}}, timeout: 5s}}
workload:
  phases:
    - {{name: steady, duration: {seconds}s, arrival: {{process: constant, rate: 20}}}}
"""
    )
    return path


def tree(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def bentoml_pids(pid: int) -> list[int]:
    found = []
    for child in tree(pid):
        try:
            if "bentoml" in " ".join(psutil.Process(child).cmdline()):
                found.append(child)
        except psutil.Error:  # gone, or a zombie, meanwhile
            pass
    return found


def start_run(tmp_path: Path, seconds: float) -> subprocess.Popen[bytes]:
    out = tmp_path / "results"
    return subprocess.Popen(
        [*INFBENCH, "run", str(scenario(tmp_path, seconds)), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_json(tmp_path: Path) -> dict[str, object]:
    (run_dir,) = (tmp_path / "results").iterdir()
    return json.loads((run_dir / "run.json").read_text())  # type: ignore[no-any-return]


def assert_gone(pids: list[int], port: int | None) -> None:
    assert wait_for(lambda: not alive(pids), 10), f"still alive: {alive(pids)}"
    if port is not None:
        assert wait_for(lambda: port_is_free(port), 5)


def port_of(pids: list[int]) -> int | None:
    for pid in alive(pids):
        cmd = psutil.Process(pid).cmdline()
        if "--port" in cmd:
            return int(cmd[cmd.index("--port") + 1])
    return None


def test_normal_end(tmp_path: Path) -> None:
    proc = start_run(tmp_path, 1)
    assert wait_for(lambda: len(bentoml_pids(proc.pid)) >= 3, 60)
    pids = bentoml_pids(proc.pid)
    port = port_of(pids)
    assert proc.wait(120) == 0
    assert_gone(pids, port)
    assert run_json(tmp_path)["status"] == "complete"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_the_load(tmp_path: Path, sig: signal.Signals) -> None:
    proc = start_run(tmp_path, 60)
    results = tmp_path / "results"
    started = wait_for(lambda: any(results.glob("*/timeseries.csv")), 90)
    assert started, "the load never started"
    pids = bentoml_pids(proc.pid)
    port = port_of(pids)
    assert len(pids) >= 3  # supervisor and two workers
    proc.send_signal(sig)
    assert proc.wait(60) == 130
    assert_gone(pids, port)
    run = run_json(tmp_path)
    assert run["status"] == "interrupted"


def test_sigterm_during_start_up(tmp_path: Path) -> None:
    proc = start_run(tmp_path, 60)
    assert wait_for(lambda: len(bentoml_pids(proc.pid)) >= 1, 60)
    pids = bentoml_pids(proc.pid)
    time.sleep(0.5)
    pids = sorted(set(pids) | set(bentoml_pids(proc.pid)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 130
    assert_gone(pids, None)


def test_exception_inside_infbench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def explode(*args: object, **kwargs: object) -> None:
        seen.extend(bentoml_pids(os.getpid()))
        raise RuntimeError("boom inside infbench")

    monkeypatch.setattr(run_command, "execute", explode)
    path = scenario(tmp_path, 1)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "r"), "-q"])
    assert isinstance(result.exception, RuntimeError)
    assert len(seen) >= 3
    assert_gone(seen, None)
