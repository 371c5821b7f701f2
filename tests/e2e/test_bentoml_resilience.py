"""Done-when of issue 8: a run whose BentoML server is SIGKILLed mid-phase with
`restart: on-failure` completes, reports the error window and the recovery time, and leaves
no orphan process. Real `bentoml serve` of scenarios/services/sentiment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from proctools import alive

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def test_killed_bentoml_server_is_restarted_and_the_outage_measured(tmp_path: Path) -> None:
    path = tmp_path / "resilience.yaml"
    path.write_text(
        f"""version: 1
name: resilience
target:
  kind: bentoml
  service: "{SCENARIOS}/services/sentiment:Sentiment"
  workers: 2
  restart: on-failure
request: {{path: /classify, body: {{text: "a fine film"}}, timeout: 2s}}
workload:
  warmup: 2s
  phases:
    - {{name: steady, duration: 28s, arrival: {{process: constant, rate: 40}}}}
faults:
  - {{at: 6s, action: kill_server}}
"""
    )
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "infbench", "run", str(path), "--out", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "100"},  # the resilience table fits the terminal's width
    )
    seen: set[int] = set()
    while proc.poll() is None:  # every process infbench ever started, restarts included
        seen |= descendants(proc.pid)
        time.sleep(0.2)
    output = proc.communicate()[0]
    assert proc.returncode == 0, output
    (run_dir,) = out.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete"

    (fault,) = run["resilience"]["faults"]
    assert fault["action"] == "kill_server" and fault["error"] is None
    assert abs(fault["time_s"] - 8.0) < 0.5  # 2 s warm-up + 6 s
    assert fault["failed_requests"] > 0
    assert 0 <= fault["first_error_after_s"] < 1.0
    assert fault["error_window_s"] > 0
    assert fault["recovered"] and fault["recovery_s"] is not None
    assert fault["recovery_s"] >= fault["error_window_s"]
    (restart,) = run["resilience"]["restarts"]
    assert restart["relaunched"] and restart["exit_code"] == -9 and restart["error"] is None
    assert restart["ready_s"] is not None and restart["ready_s"] > fault["time_s"]
    assert "resilience" in output and "kill_server" in output and "ready again after" in output

    assert len(seen) >= 6  # two launches of a supervisor and two workers
    deadline = time.monotonic() + 10
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(seen), f"orphans: {alive(seen)}"
    assert not (run_dir / "target.pid").exists()
