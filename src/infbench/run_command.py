"""``infbench run``: the whole story of one run, in the order of the DESIGN diagram."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .arrivals import build_schedule
from .gate import parse_slo
from .report.console import LiveView, print_run
from .results import ResultDir, new_run_dir
from .runner import RunOutcome, execute
from .scenario_source import load_scenario
from .target.factory import open_target

__all__ = ["run_scenario"]


def run_scenario(
    scenario_path: Path,
    out_root: Path,
    overrides: list[str],
    url: str | None,
    *,
    live: bool,
    console: Console,
) -> RunOutcome:
    """Load scenario, build schedule, start target, run engine, save results, render report."""
    loaded = load_scenario(scenario_path, overrides)
    parse_slo(loaded.scenario.slo)  # a bad SLO fails now, before any load is sent
    schedule = build_schedule(loaded.scenario.workload, loaded.base_dir)
    results = ResultDir(new_run_dir(out_root, loaded.scenario.name))
    target = open_target(loaded.scenario.target, loaded.base_dir, results.file("server.log"), url)
    try:
        info = target.start()
        observer = _observer(target, info, results)
        with LiveView(console, schedule.total_duration_s, enabled=live) as view:
            outcome = execute(loaded, schedule, results, info, observer, view.update)
    finally:
        target.stop()
    print_run(console, outcome.run, outcome.slo)
    return outcome


def _observer(target: object, info: object, results: ResultDir) -> object | None:
    return None
