"""``infbench validate``: check a scenario as ``run`` would, and preview its phases."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from infbench.analysis.slo import parse_slo
from infbench.report.console import schedule_grid
from infbench.report.tables import fit
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule
from infbench.targets.faults import check_faults
from infbench.workload.sources import check_requests

__all__ = ["validate_scenario"]


def validate_scenario(path: Path, overrides: list[str], console: Console) -> None:
    """Every check ``run`` makes before it starts a target; an InfbenchError names the fault."""
    loaded = load_scenario(path, overrides)
    parse_slo(loaded.scenario.slo)
    scenario = loaded.scenario
    schedule = build_schedule(scenario.workload, loaded.base_dir)
    check_requests(scenario.request, loaded.base_dir, scenario.workload.seed, schedule)
    check_faults(scenario, schedule, None)
    for table in fit(console, schedule_grid(loaded.scenario.name, schedule)):
        console.print(table)
    console.print(f"schedule sha256 {schedule.sha256}", style="dim")
