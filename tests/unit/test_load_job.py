"""The load stage's values: a job crosses to another process without its hooks; the
generators' figures merge in one function, side by side or one after the other."""

from __future__ import annotations

import pickle
from pathlib import Path

from infbench.load.engine import EngineHooks
from infbench.load.job import LoadJob, merge_generators
from infbench.results.records import GeneratorSummary
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule


def test_a_job_arrives_in_another_process_without_the_callers_hooks(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        """version: 1
name: job
target: {kind: url, url: "http://127.0.0.1:9"}
request: {path: /x}
workload:
  phases: [{name: steady, duration: 1s, arrival: {process: constant, rate: 5}}]
"""
    )
    loaded = load_scenario(path, [])
    schedule = build_schedule(loaded.scenario.workload, tmp_path)
    seen: list[str] = []
    hooks = EngineHooks(on_phase=lambda name, edge: seen.append(name))  # a lambda: no pickle
    job = LoadJob(loaded, schedule, tmp_path, "http://127.0.0.1:9", hooks)
    there = pickle.loads(pickle.dumps(job))
    assert (there.out_dir, there.base_url) == (job.out_dir, job.base_url)
    assert there.schedule.sha256 == schedule.sha256
    assert there.hooks is not hooks
    there.hooks.on_phase("steady", "start")
    assert seen == []  # its own hooks do nothing in this process


def _part(cpu: float, rss: float, priority: str) -> GeneratorSummary:
    return GeneratorSummary(
        cpu_pct=cpu, busy_cpu_pct=cpu / 2, spin_s=0.5, rss_mb=rss, processes=1,
        sender="fast", priority=priority, realtime_s=1.25,
    )  # fmt: skip


def test_generators_side_by_side_and_one_after_the_other() -> None:
    parts = [_part(40.0, 100.0, "realtime"), _part(70.0, 120.0, "normal")]
    both = merge_generators(parts)
    assert (both.cpu_pct, both.busy_cpu_pct, both.rss_mb, both.spin_s) == (70.0, 35.0, 220.0, 1.0)
    assert (both.processes, both.priority, both.realtime_s, both.sender) == (
        2, "normal", 2.5, "fast",
    )  # fmt: skip
    assert both.per_process == tuple(part.to_json() for part in parts)
    repeated = merge_generators(parts, side_by_side=False)
    assert (repeated.cpu_pct, repeated.rss_mb, repeated.processes) == (70.0, 120.0, 1)
    assert repeated.per_process is None
