"""Console view of run.json's ``resilience``: one row per injected fault, then the restarts."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.text import Text

from infbench.figure_format import MISSING, format_figure
from infbench.report.tables import Grid, fit, new_grid
from infbench.results.records import RunRecord

__all__ = ["print_resilience", "resilience_grid"]


def _s(value: Any) -> str:
    """Seconds as the figure formatter writes a duration (1.25 s, 830 ms)."""
    return format_figure(None if value is None else value * 1000, "ms")


def resilience_grid(run: RunRecord) -> Grid | None:
    """One row per injected fault (the phase is in run.json); None when none was injected."""
    faults = run.resilience.faults if run.resilience is not None else ()
    if not faults:
        return None
    grid = new_grid(
        "resilience (times from each fault)",
        ("fault", "at", "1st error", "errors for", "failed", "recovery", "p50 before"),
    )
    for fault in faults:
        recovery = fault.get("recovery_s")
        shown = _s(recovery) if recovery is not None else "never"
        if fault.get("time_s") is None or fault.get("baseline_p50_ms") is None:
            shown = MISSING  # not done, or no traffic before it to compare with
        grid.add_row(
            fault["action"],
            _s(fault.get("time_s")),
            _s(fault.get("first_error_after_s")),
            _s(fault.get("error_window_s")),
            format_figure(fault.get("failed_requests", 0), "count"),
            Text(shown, style="red" if shown == "never" else ""),
            format_figure(fault.get("baseline_p50_ms"), "ms"),
        )
    return grid


def print_resilience(console: Console, run: RunRecord) -> None:
    """The table, plus one line per server restart (or exit left alone)."""
    grid = resilience_grid(run)
    tables = fit(console, grid) if grid is not None else []
    restarts = run.resilience.restarts if run.resilience is not None else ()
    lines = []
    for restart in restarts:
        ready = restart.get("startup_s")
        what = f"ready again after {ready:.2f} s" if ready is not None else "not restarted"
        if restart.get("error"):
            what = f"restart failed: {restart['error']}"
        lines.append(Text(f"server {restart['reason']} at {restart['time_s']:.1f} s: {what}"))
    if tables or lines:
        console.print(Group(*tables, *lines))
