"""client.engine: ray on a local Ray instance: the same result directory as a local run.

One Ray instance and one fake server (in a process of its own, so the local and the Ray run
see the same server and neither shares its GIL) serve the whole module.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from infbench.cli import app
from infbench.compare.comparison import compare
from infbench.load.processes import slice_schedule
from infbench.results.percentile import percentile_rank
from infbench.results.rundir import ResultDir, new_run_dir
from infbench.run.measure import execute
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import Schedule, build_schedule
from infbench.targets.base import TargetInfo

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow

_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from fakeserver import FakeServer
with FakeServer(delay_s=float(sys.argv[2])) as server:
    print(server.url, flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    tests = str(Path(__file__).parents[1])
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, tests, "0.02"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def _scenario(tmp: Path, url: str, phases: str, request: str = "{path: /x, timeout: 5s}") -> Path:
    path = tmp / "s.yaml"
    path.write_text(
        f"""version: 1
name: onray
target: {{kind: url, url: "{url}"}}
request: {request}
client: {{ray: {{actors: 2}}}}
workload:
  seed: 7
{phases}"""
    )
    return path


def _run(path: Path, out: Path, *extra: str) -> Path:
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "-q", *extra])
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def runs(ray_session: None, server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same scenario run locally and on Ray (two actors), with a dataset the actors get
    as bytes (their hosts need not have the file)."""
    tmp = tmp_path_factory.mktemp("runs")
    lines = (json.dumps({"text": "x" * n}) for n in range(1, 40))
    (tmp / "data").mkdir()
    (tmp / "data" / "texts.jsonl").write_text("\n".join(lines) + "\n")
    phases = """  warmup: 1s
  phases:
    - {name: steady, duration: 6s, arrival: {process: poisson, rate: 80}}
"""
    request = '{path: /x, body: {text: "{{text}}"}, dataset: {path: data/texts.jsonl}}'
    path = _scenario(tmp, server_url, phases, request)
    local = _run(path, tmp / "local")
    on_ray = _run(path, tmp / "ray", "--ray", "local")
    return path, local, on_ray


def _json(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())  # type: ignore[no-any-return]


def _rows(run_dir: Path) -> list[list[str]]:
    with gzip.open(run_dir / "requests.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("seq,phase,intended_ns")
    return [line.split(",") for line in lines[1:]]


def test_request_counts_equal_the_schedule(runs: Any) -> None:
    path, local, on_ray = runs
    run = _json(on_ray)
    assert run["generator"]["engine"] == "ray" and len(run["generator"]["per_process"]) == 2
    for actor in run["generator"]["per_process"]:
        assert {"node_id", "node_ip", "clock_offset_ms", "rtt_ms", "lag_p99_ms"} <= actor.keys()
        assert abs(actor["clock_offset_ms"]) < 50  # one host: the offset is the error
    schedule = build_schedule(load_scenario(path, []).scenario.workload, path.parent)
    warmup, steady = schedule.phases
    assert run["warmup"]["completed"] == warmup.scheduled
    (phase,) = run["phases"]
    assert phase["scheduled"] == phase["completed"] == phase["ok"] == steady.scheduled
    # request k got the same dataset row as in the local run
    assert phase["bytes_out"] == _json(local)["phases"][0]["bytes_out"] > 0
    rows = _rows(on_ray)
    assert len(rows) == warmup.scheduled + steady.scheduled
    assert len({int(row[0]) for row in rows}) == len(rows)  # every request number exactly once
    assert not list(on_ray.glob("generator-*"))
    assert (on_ray / "timeseries.csv").read_text().count("\n") >= 7


def test_merged_percentiles_equal_those_of_the_raw_rows(runs: Any) -> None:
    _, _, on_ray = runs
    (phase,) = _json(on_ray)["phases"]
    latencies_us = np.sort(
        [(int(r[5]) - int(r[2])) // 1000 for r in _rows(on_ray) if r[1] == "steady"]
    )
    n = len(latencies_us)
    for key, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100)):
        rank = percentile_rank(pct, n)  # HdrHistogram's reference rank, ⌈pct/100 · n⌉
        exact_ms = latencies_us[rank - 1] / 1000
        # 3 significant digits: a bucket is at most 1/1024 of its value wide
        assert phase["latency_ms"][key] == pytest.approx(exact_ms, rel=1e-3, abs=1e-3), key


def test_ray_run_is_equivalent_to_a_local_run(runs: Any) -> None:
    _, local, on_ray = runs
    comparison = compare(local, on_ray)
    assert any(r.testable for r in comparison.rows)  # "~" as a result, not for want of data
    changed = [(r.metric, r.base, r.cand, r.verdict) for r in comparison.rows if r.verdict != "~"]
    assert not changed


class _AtPhaseStart:
    """An observer (runner.Observing) that does something a second into the first phase."""

    def __init__(self, action: Callable[[], object]) -> None:
        self.action = action

    def start(self) -> None: ...
    def phase_ended(self, name: str) -> None: ...
    def latest(self) -> dict[str, float | None]:
        return {}

    def stop(self) -> dict[str, Any]:
        return {}

    def phase_started(self, name: str) -> None:
        threading.Timer(1.0, self.action).start()


def _execute_on_ray(
    server_url: str, tmp_path: Path, action: Callable[[ResultDir], object], duration_s: int = 3
) -> tuple[dict[str, Any], Schedule, Path]:
    """A run on two actors, through the runner as ``infbench run --ray`` does it."""
    phases = f"""  phases:
    - {{name: steady, duration: {duration_s}s, arrival: {{process: poisson, rate: 60}}}}
"""
    loaded = load_scenario(_scenario(tmp_path, server_url, phases), ["client.engine=ray"])
    schedule = build_schedule(loaded.scenario.workload, tmp_path)
    results = ResultDir(new_run_dir(tmp_path / "r", "onray"))
    observer = _AtPhaseStart(lambda: action(results))
    run = execute(loaded, schedule, results, TargetInfo("url", server_url), observer)
    return run.to_json(), schedule, results.path


def test_an_actor_that_dies_is_reported_and_its_arrivals_dropped(
    ray_session: None, server_url: str, tmp_path: Path
) -> None:
    def kill(results: ResultDir) -> None:
        ray.kill(ray.get_actor(f"infbench-{results.path.name}-1"))

    run, schedule, run_dir = _execute_on_ray(server_url, tmp_path, kill)
    survivor, victim = (slice_schedule(schedule, k, 2).phases[0].scheduled for k in (0, 1))
    (phase,) = run["phases"]
    assert phase["dropped"] == victim and phase["completed"] == survivor
    assert phase["scheduled"] == survivor + victim
    assert not run["valid"]
    assert any("Ray generator 1" in w and "died mid-run" in w for w in run["warnings"])
    dead = run["generator"]["per_process"][1]
    assert dead["actor"] == 1 and dead["died"]
    assert len(_rows(run_dir)) == survivor
    assert (run_dir / "timeseries.csv").read_text().count("\n") >= 3


def test_an_interrupt_stops_every_actor_and_keeps_their_results(
    ray_session: None, server_url: str, tmp_path: Path
) -> None:
    """Ctrl-C (or SIGTERM) on the driver: each actor finalizes its share, as processes do."""
    # 10 s of schedule and the interrupt 1 s in: on a loaded machine the stop request may take
    # a while to reach the actors, and it must reach them before their schedule runs out.
    run, schedule, run_dir = _execute_on_ray(
        server_url, tmp_path, lambda results: os.kill(os.getpid(), signal.SIGINT), duration_s=10
    )
    (phase,) = run["phases"]
    assert run["status"] == "interrupted"
    assert 0 < phase["completed"] < schedule.phases[0].scheduled and phase["dropped"] == 0
    assert not any("died" in entry for entry in run["generator"]["per_process"])
    seqs = [int(row[0]) for row in _rows(run_dir)]
    assert len(seqs) == phase["completed"] and {s % 2 for s in seqs} == {0, 1}  # both actors
