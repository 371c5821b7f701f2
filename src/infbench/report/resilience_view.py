"""Console view of run.json's ``resilience``: one row per injected fault, then the restarts."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from infbench.results.records import RunRecord

__all__ = ["print_resilience", "resilience_table"]


def _s(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def resilience_table(run: RunRecord) -> Table | None:
    """Narrow enough for an 80-column terminal or CI log (the phase is in run.json)."""
    faults = run.resilience.faults if run.resilience is not None else ()
    if not faults:
        return None
    table = Table(title="resilience (seconds from each fault)", title_justify="left")
    columns = ("fault", "at s", "1st err s", "errors s", "failed", "recovery s", "p50 ms")
    for index, header in enumerate(columns):
        table.add_column(header, justify="right" if index else "left", no_wrap=not index)
    for fault in faults:
        recovery = fault.get("recovery_s")
        shown = _s(recovery) if recovery is not None else "never"
        if fault.get("time_s") is None or fault.get("baseline_p50_ms") is None:
            shown = "–"  # not done, or no traffic before it to compare with
        table.add_row(
            fault["action"],
            _s(fault.get("time_s"), 1),
            _s(fault.get("first_error_after_s")),
            _s(fault.get("error_window_s")),
            f"{fault.get('failed_requests', 0):,}",
            Text(shown, style="red" if shown == "never" else ""),
            _s(fault.get("baseline_p50_ms")),
        )
    return table


def print_resilience(console: Console, run: RunRecord) -> None:
    """The table, plus one line per server restart (or exit left alone)."""
    table = resilience_table(run)
    restarts = run.resilience.restarts if run.resilience is not None else ()
    lines = []
    for restart in restarts:
        ready = restart.get("startup_s")
        what = f"ready again after {ready:.2f} s" if ready is not None else "not restarted"
        if restart.get("error"):
            what = f"restart failed: {restart['error']}"
        lines.append(Text(f"server {restart['reason']} at {restart['time_s']:.1f} s: {what}"))
    if table is not None or lines:
        console.print(Group(*([table] if table is not None else []), *lines))
