"""client.processes: the schedule split among processes, merged without loss."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app
from infbench.load.processes import slice_schedule
from infbench.scenario.model import Workload
from infbench.schedule.arrivals import build_schedule


def test_slices_are_a_partition_of_the_schedule() -> None:
    workload = Workload.model_validate(
        {
            "phases": [
                {"name": "a", "duration": 5, "arrival": {"process": "poisson", "rate": 100}},
                {"name": "b", "duration": 5, "arrival": {"process": "closed", "concurrency": 5}},
            ]
        }
    )
    full = build_schedule(workload, Path("."))
    parts = [slice_schedule(full, k, 3) for k in range(3)]
    union = np.sort(np.concatenate([p.phases[0].offsets for p in parts]))  # type: ignore[misc]
    np.testing.assert_array_equal(union, full.phases[0].offsets)  # type: ignore[arg-type]
    assert [p.phases[1].closed.concurrency for p in parts] == [2, 2, 1]  # type: ignore[union-attr]


def test_two_processes_record_every_arrival_once(tmp_path: Path) -> None:
    with FakeServer(delay_s=0.002) as server:
        path = tmp_path / "s.yaml"
        path.write_text(
            f"""version: 1
name: procs
target: {{kind: url, url: "{server.url}"}}
request: {{path: /x, timeout: 5s}}
client: {{processes: 2}}
workload:
  warmup: 1s
  phases:
    - {{name: steady, duration: 2s, arrival: {{process: poisson, rate: 100}}}}
    - {{name: loop, duration: 1s, arrival: {{process: closed, concurrency: 3}}}}
"""
        )
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "r"), "-q"])
        received = server.count("/x")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "r").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["generator"]["processes"] == 2 and len(run["generator"]["per_process"]) == 2
    assert run["generator"]["priority"] in {"realtime", "normal"}  # as the processes applied it
    steady, loop = run["phases"]
    schedule = build_schedule(Workload.model_validate(run["scenario"]["workload"]), tmp_path)
    assert steady["scheduled"] == schedule.phases[1].scheduled == steady["completed"]
    assert loop["completed"] > 0
    total = steady["completed"] + loop["completed"] + run["warmup"]["completed"]
    assert received == total
    with gzip.open(run_dir / "requests.csv.gz", "rt") as rows:
        lines = rows.read().splitlines()
    assert lines[0].startswith("seq,phase,intended_ns") and len(lines) == 1 + total
    steady_seqs = sorted(int(line.split(",")[0]) for line in lines[1:] if ",steady," in line)
    assert len(set(steady_seqs)) == steady["completed"]  # every request number exactly once
    counts: dict[str, int] = {}
    reader = HistogramLogReader(str(run_dir / "latency.hlog"), HdrHistogram(1, 60_000_000, 3))
    while (hist := reader.get_next_interval_histogram()) is not None:
        counts[hist.get_tag()] = counts.get(hist.get_tag(), 0) + hist.get_total_count()
    assert counts["steady/latency"] == steady["ok"]
    assert not list(run_dir.glob("generator-*"))
    assert (run_dir / "timeseries.csv").read_text().count("\n") >= 4
