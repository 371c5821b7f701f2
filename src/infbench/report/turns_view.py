"""Console grids of LLM traffic as users have it (report/console.py calls ``traffic_grids``
with one line): the sessions of conversation phases, TTFT by turn index (it grows with the
context), and the lengths a trace replay sent; report.html shows the same grids
(``traffic_html``)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from infbench.figure_format import MISSING, format_figure
from infbench.report.page import table
from infbench.report.tables import Grid, new_grid
from infbench.results.records import PhaseSummary, RunRecord

__all__ = ["traffic_grids", "traffic_html"]


def traffic_grids(run: RunRecord) -> list[Grid]:
    """Each grid only when some phase has its figures."""
    grids = [_sessions_grid(run.phases), _turns_grid(run.phases), _trace_grid(run.phases)]
    return [grid for grid in grids if grid is not None]


def traffic_html(run: RunRecord) -> str:
    """report.html's sessions, TTFT by turn and trace lengths; "" when no phase has them."""
    parts = []
    for index, grid in enumerate(traffic_grids(run)):
        headers = [column.header for column in grid.columns]
        rows = [[str(cell) for cell in row] for row in grid.rows]
        parts.append(f"<h3>{escape(str(grid.title))}</h3>")
        parts.append(table(headers, rows, table_id=f"traffic-{index}"))
    return "".join(parts)


def _sessions_grid(phases: Sequence[PhaseSummary]) -> Grid | None:
    grid = new_grid(
        "sessions (cut: the phase ended before their next turn)",
        ("phase", "started", "completed", "cut", "failed", "turns sent"),
    )
    for phase in phases:
        s = phase.sessions
        if s is None:
            continue
        counts = (s.started, s.completed, s.cut, s.failed, s.turns)
        grid.add_row(phase.name, *(format_figure(n, "count") for n in counts))
    return grid if grid.rows else None  # no phase measured these figures


def _turns_grid(phases: Sequence[PhaseSummary]) -> Grid | None:
    grid = new_grid(
        "TTFT by turn (from the turn's intended time: the answer before it + think time)",
        ("phase", "turn", "requests", "TTFT p50", "TTFT p90", "TTFT p99", "input tokens"),
        keys=2,
    )
    for phase in phases:
        for turn in phase.turns or ():
            ttft = turn.ttft_ms
            grid.add_row(
                phase.name,
                str(turn.turn),
                format_figure(turn.requests, "count"),
                format_figure(ttft.p50, "ms") if ttft else MISSING,
                format_figure(ttft.p90, "ms") if ttft else MISSING,
                format_figure(ttft.p99, "ms") if ttft else MISSING,
                format_figure(turn.input_tokens),
            )
    return grid if grid.rows else None  # no phase measured these figures


def _trace_grid(phases: Sequence[PhaseSummary]) -> Grid | None:
    grid = new_grid(
        "trace replay: the lengths sent (means per answered request, from the server's usage)",
        ("phase", "requests", "input tokens", "output tokens"),
    )
    for phase in phases:
        if phase.process != "trace" or phase.output_tokens is None:
            continue
        ok = phase.ok or None
        mean_in = phase.input_tokens / ok if ok and phase.input_tokens is not None else None
        mean_out = phase.output_tokens / ok if ok and phase.output_tokens is not None else None
        grid.add_row(
            phase.name, format_figure(phase.ok, "count"), format_figure(mean_in),
            format_figure(mean_out),
        )  # fmt: skip
    return grid if grid.rows else None  # no phase measured these figures
