"""A small real result directory for the report's tests: ``infbench run`` (through Typer's
CliRunner) against the in-process fake server, 2.5 s of load with every tenth answer a 503,
so the report has phases, errors, an SLO that fails and one that holds."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app

STATUSES = (200,) * 9 + (503,)
SCENARIO = """version: 1
name: reported
target: {{kind: url, url: "{url}"}}
request: {{method: POST, path: /classify, body: {{text: hello}}, timeout: 5s}}
workload:
  seed: 5
  warmup: 0.5s
  phases:
    - {{name: steady, duration: 1s, arrival: {{process: poisson, rate: 80}}}}
    - {{name: ramp, duration: 1s, arrival: {{process: ramp, from: 20, to: 120}}}}
slo: {{p99: 2s, error_rate: 1%}}
"""


def make_run_dir(root: Path) -> tuple[Path, str]:
    """Run the scenario; return the result directory and the command's output."""
    with FakeServer(delay_s=0.01, status=STATUSES) as server:
        scenario = root / "scenario.yaml"
        scenario.write_text(SCENARIO.format(url=server.url))
        result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(root / "results")])
    assert result.exit_code in (0, 1), result.output  # 1: the error_rate SLO fails, as meant
    (run_dir,) = (root / "results").iterdir()
    return run_dir, result.output
