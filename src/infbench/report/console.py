"""Console views: the live display during a run and the per-phase tables after it."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.status import Status
from rich.text import Text

from infbench.analysis.slo import RuleResult
from infbench.figure_format import MISSING, format_figure
from infbench.recorder.recorder import IntervalStats
from infbench.report.server_view import observed_grids, quantile_text
from infbench.report.tables import Grid, fit, new_grid, to_markdown
from infbench.report.turns_view import traffic_grids
from infbench.results.records import RunRecord, ServerPhase
from infbench.schedule.arrivals import Schedule
from infbench.units import format_duration

if TYPE_CHECKING:
    from infbench.targets.ready import WaitStatus  # the report views need no HTTP client

__all__ = [
    "LiveView",
    "WaitView",
    "phase_grids",
    "print_run",
    "repetitions_grid",
    "run_markdown",
    "run_notes",
    "schedule_grid",
]


class LiveView:
    """A once-a-second status line: phase, elapsed/total, offered vs achieved, in flight, p50/p99.

    Fed from the engine's hook thread; rich renders from that thread, never the event loop.
    """

    def __init__(self, console: Console, total_s: float, enabled: bool = True) -> None:
        self.console = console
        self.total_s = total_s
        self.enabled = enabled and console.is_terminal
        self._live: Live | None = None
        self._recent: deque[IntervalStats] = deque(maxlen=5)
        self._errors = 0
        self._lock = threading.Lock()

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(Text("starting…"), console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, stats: IntervalStats, in_flight: int, phase: str) -> None:
        with self._lock:
            self._recent.append(stats)
            self._errors += stats.errors
            if self._live is None:
                return
            window = float(len(self._recent))
            offered = sum(s_.offered for s_ in self._recent) / window
            achieved = sum(s_.completed for s_ in self._recent) / window
            elapsed = stats.start_s + 1
            # A live display must fit the terminal (rich crops what does not): wrap this line
            # even on the command line's soft-wrapping console.
            line = Text.assemble(
                (f"{phase or '…':<12}", "bold cyan"),
                f" {elapsed:>6.0f}/{self.total_s:.0f}s",
                f"  offered {offered:>8.1f}/s  achieved {achieved:>8.1f}/s",
                f"  in flight {in_flight:>5}",
                f"  p50 {format_figure(stats.latency_p50_ms, 'ms')}",
                f"  p99 {format_figure(stats.latency_p99_ms, 'ms')}",
                ("  errors " + f"{self._errors:,}", "red" if self._errors else "green"),
                no_wrap=False,
                overflow="fold",
            )
            self._live.update(line, refresh=True)


class WaitView:
    """What a readiness wait is waiting for, once it has lasted ``after_s``.

    On a terminal, one status line with a spinner, updated in place and gone when the wait
    ends; elsewhere (CI logs, pipes), a plain line at ``after_s`` and then every ``every_s``,
    never one per probe. ``update`` is the target's progress callback: reports outside the
    ``with`` block (a relaunch while the load runs under the LiveView) are dropped.
    """

    def __init__(
        self, console: Console | None, *, after_s: float = 1.0, every_s: float = 10.0
    ) -> None:
        self.console, self.after_s, self.every_s = console, after_s, every_s
        self._active = False
        self._status: Status | None = None
        self._next_line_s = after_s
        self._lock = threading.Lock()

    def __enter__(self) -> WaitView:
        with self._lock:
            self._active, self._next_line_s = True, self.after_s
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active = False
            if self._status is not None:
                self._status.stop()
                self._status = None

    def update(self, status: WaitStatus) -> None:
        with self._lock:
            if not self._active or self.console is None or status.waited_s < self.after_s:
                return
            text = Text(status.describe())
            if self.console.is_terminal:
                if self._status is None:
                    self._status = self.console.status(text)
                    self._status.start()
                else:
                    self._status.update(text)
            elif status.waited_s >= self._next_line_s:
                self.console.print(text, highlight=False, soft_wrap=True)
                self._next_line_s = status.waited_s + self.every_s


def phase_grids(run: RunRecord) -> list[Grid]:
    """Per phase: the traffic (counts and rates), the latency, tokens and the server when measured.

    Narrow tables rather than one wide one; ``print_run`` fits each to the terminal. A view of
    another module joins with one call line here, returning a Grid (or None: nothing to show).
    """
    grids = [_traffic_grid(run), _latency_grid(run), _tokens_grid(run), _server_grid(run)]
    grids += observed_grids(run)  # report/server_view.py: the LLM server, GPUs, cost
    grids += traffic_grids(run)  # report/turns_view.py: sessions, TTFT by turn, trace lengths
    return [grid for grid in grids if grid is not None]


def _traffic_grid(run: RunRecord) -> Grid:
    grid = new_grid(
        f"{run.scenario.name}: {run.status}",
        ("phase", "process", "requests", "ok", "errors", "offered/s", "achieved/s", "good/s"),
        left=2,
    )
    for phase in run.phases:
        grid.add_row(
            phase.name,
            phase.process,
            format_figure(phase.requests, "count"),
            format_figure(phase.ok, "count"),
            Text(format_figure(phase.failed, "count"), style="red" if phase.failed else ""),
            *(format_figure(v) for v in (phase.offered_rps, phase.achieved_rps, phase.goodput_rps)),
        )
    return grid


def _latency_grid(run: RunRecord) -> Grid:
    grid = new_grid(
        "latency (from intended send time)",
        ("phase", "p50", "p90", "p99", "p99.9", "max", "svc p50", "svc p99", "lag p99"),
    )
    for phase in run.phases:
        lat, svc = phase.latency_ms, phase.service_ms
        figures = (lat.p50, lat.p90, lat.p99, lat.p999, lat.max, svc.p50, svc.p99, phase.lag_ms.p99)
        grid.add_row(phase.name, *(format_figure(v, "ms") for v in figures))
    return grid


def _tokens_grid(run: RunRecord) -> Grid | None:
    """Streamed phases (DESIGN §5b): time to first token, time per output token, tokens/s."""
    streamed = [p for p in run.phases if p.ttft_ms is not None]
    if not streamed:
        return None
    # the token audit's column only where usage and a tokenizer both counted (DESIGN §5b)
    audited = any(p.token_mismatch_pct is not None for p in streamed)
    grid = new_grid(
        "tokens (TTFT from intended send time)",
        ("phase", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "ITL p99", "tok/s", "out tokens")
        + (("tok mismatch",) if audited else ()),
    )
    for phase in streamed:
        ttft, tpot, itl = phase.ttft_ms, phase.tpot_ms, phase.itl_ms
        times = (
            ttft.p50 if ttft else None,
            ttft.p99 if ttft else None,
            tpot.p50 if tpot else None,
            tpot.p99 if tpot else None,
            itl.p99 if itl else None,
        )
        grid.add_row(
            phase.name,
            *(format_figure(v, "ms") for v in times),
            format_figure(phase.output_tps),
            format_figure(phase.output_tokens, "count"),
            *((format_figure(phase.token_mismatch_pct, "%"),) if audited else ()),
        )
    return grid


def _server_figures(figures: ServerPhase) -> tuple[float | None, ...]:
    return (
        figures.duration_p50_ms,
        figures.duration_p99_ms,
        figures.mean_batch_size,
        figures.cpu_pct_mean,
        figures.rss_mb_max,
    )


def _server_grid(run: RunRecord) -> Grid | None:
    """None when nothing was measured (an attached URL without /metrics has nothing to show)."""
    server = run.server.phases if run.server is not None else {}
    if not any(v is not None for figures in server.values() for v in _server_figures(figures)):
        return None
    grid = new_grid("server", ("phase", "srv p50", "srv p99", "batch", "CPU %", "RSS MB"))
    for phase in run.phases:
        figures = server.get(phase.name, ServerPhase())
        p50, p99, batch, cpu, rss = _server_figures(figures)
        grid.add_row(
            phase.name,
            quantile_text(p50, figures.duration_p50_bucket_ms),  # the bucket it lies in
            quantile_text(p99, figures.duration_p99_bucket_ms),
            *(format_figure(v) for v in (batch, cpu, rss)),
        )
    return grid


def print_run(console: Console, run: RunRecord, slo: list[RuleResult]) -> None:
    """Tables, validity verdict with its reasons, SLO results, and where the files are."""
    tables = [table for grid in phase_grids(run) for table in fit(console, grid)]
    console.print(Group(*tables, *run_notes(run, slo)))


def run_markdown(run: RunRecord, slo: list[RuleResult]) -> str:
    """The same tables and lines as ``print_run``, in GitHub-flavoured markdown."""
    parts = ["### infbench run", ""]
    parts += [to_markdown(grid) for grid in phase_grids(run)]
    parts += [f"- {line.plain.strip().removeprefix('- ')}" for line in run_notes(run, slo)]
    return "\n".join(parts) + "\n"


def run_notes(run: RunRecord, slo: list[RuleResult]) -> list[Text]:
    """The lines under the tables: errors by kind, validity, SLO, warnings, start-up, files."""
    notes = []
    if run.errors_by_kind:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in run.errors_by_kind.items())
        notes.append(Text(f"errors: {kinds}", style="red"))
    if run.valid:
        notes.append(Text("valid: the generator kept up with the schedule", style="green"))
    else:
        notes.append(Text("INVALID run:", style="bold red"))
        notes += [Text(f"  - {reason}", style="red") for reason in run.invalid_reasons]
    notes += _slo_lines(slo)
    notes += [Text(f"warning: {warning}", style="yellow") for warning in run.warnings]
    if run.target is not None and run.target.startup_s is not None:
        notes.append(Text(f"target started in {format_figure(run.target.startup_s * 1000, 'ms')}"))
    notes.append(Text(f"results: {run.result_dir}", style="dim"))
    return notes


def repetitions_grid(runs: dict[str, RunRecord]) -> Grid:
    """A ``run --repeat`` aggregate's runs side by side: how much each repetition varied."""
    grid = new_grid(
        "repetitions", ("run", "phase", "requests", "p50", "p99", "achieved/s", "valid"), keys=2
    )
    for name, run in runs.items():
        for phase in run.phases:
            grid.add_row(
                name,
                phase.name,
                format_figure(phase.requests, "count"),
                format_figure(phase.latency_ms.p50, "ms"),
                format_figure(phase.latency_ms.p99, "ms"),
                format_figure(phase.achieved_rps),
                "yes" if run.valid else Text("NO", style="red"),
            )
    return grid


def schedule_grid(name: str, schedule: Schedule) -> Grid:
    """``infbench validate``'s preview: each phase's length, request count and mean rate."""
    grid = new_grid(
        f"{name}: valid", ("phase", "process", "duration", "requests", "mean rate/s"), left=2
    )
    for plan in schedule.phases:
        closed = plan.closed
        grid.add_row(
            plan.name + (" (warm-up)" if plan.warmup else ""),
            plan.process,
            format_duration(plan.duration_s),
            f"closed loop, {closed.concurrency} workers"
            if closed
            else format_figure(plan.scheduled, "count"),
            MISSING if closed else format_figure(plan.mean_rate),
        )
    return grid


def _slo_lines(results: list[RuleResult]) -> list[Text]:
    """One line per SLO rule: ok, or each phase that broke it with its value."""
    by_rule: dict[str, list[RuleResult]] = {}
    for result in results:
        by_rule.setdefault(f"{result.rule.metric} {result.rule.text}", []).append(result)
    lines = []
    for group in by_rule.values():
        failed = [r for r in group if not r.passed]
        if failed:
            lines += [Text(f"slo {r.message}", style="bold red") for r in failed]
        else:
            rule = group[0].rule
            op = "≥" if rule.higher_is_better else "≤"
            lines.append(Text(f"slo {rule.metric} {op} {rule.text}: ok in every phase", "green"))
    return lines
