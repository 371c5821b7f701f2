"""Console views: the live display during a run and the per-phase table after it."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..gate import RuleResult
from ..recorder import IntervalStats

__all__ = ["LiveView", "phase_table", "print_run"]


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


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
            line = Text.assemble(
                (f"{phase or '…':<12}", "bold cyan"),
                f" {elapsed:>6.0f}/{self.total_s:.0f}s",
                f"  offered {offered:>8.1f}/s  achieved {achieved:>8.1f}/s",
                f"  in flight {in_flight:>5}",
                f"  p50 {_num(stats.latency_p50_ms, 2)} ms  p99 {_num(stats.latency_p99_ms, 2)} ms",
                ("  errors " + f"{self._errors:,}", "red" if self._errors else "green"),
            )
            self._live.update(line, refresh=True)


def phase_table(run: dict[str, Any]) -> Table:
    """The per-phase summary: counts, rates, latency percentiles, service time and lag."""
    server = (run.get("server") or {}).get("phases", {})
    table = Table(title=f"{run['scenario']['name']} — {run['status']}", title_justify="left")
    for header in ("phase", "process", "requests", "ok", "errors", "offered/s", "achieved/s"):
        table.add_column(header, justify="left" if header in ("phase", "process") else "right")
    for header in ("p50", "p90", "p99", "p99.9", "max", "mean", "svc p50", "svc p99", "lag p99"):
        table.add_column(f"{header} ms", justify="right")
    if server:
        for header in ("srv p50 ms", "srv p99 ms", "batch", "srv CPU %", "RSS MB"):
            table.add_column(header, justify="right")
    for phase in run["phases"]:
        lat, svc = phase["latency_ms"], phase["service_ms"]
        errors = sum(phase["errors"].values()) + phase["dropped"]
        cells = [
            phase["name"],
            phase["process"],
            _num(phase["completed"] + phase["dropped"]),
            _num(phase["ok"]),
            Text(_num(errors), style="red" if errors else ""),
            _num(phase["offered_rps"]),
            _num(phase["achieved_rps"]),
            *(_num(lat[k], 2) for k in ("p50", "p90", "p99", "p999", "max", "mean")),
            _num(svc["p50"], 2),
            _num(svc["p99"], 2),
            _num(phase["lag_ms"]["p99"], 3),
        ]
        if server:
            srv = server.get(phase["name"], {})
            cells += [
                _num(srv.get("duration_p50_ms"), 2),
                _num(srv.get("duration_p99_ms"), 2),
                _num(srv.get("mean_batch_size"), 2),
                _num(srv.get("cpu_pct_mean")),
                _num(srv.get("rss_mb_max")),
            ]
        table.add_row(*cells)
    return table


def print_run(console: Console, run: dict[str, Any], slo: list[RuleResult]) -> None:
    """Table, validity verdict with its reasons, SLO results, and where the files are."""
    parts: list[Any] = [phase_table(run)]
    if run["errors_by_kind"]:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in run["errors_by_kind"].items())
        parts.append(Text(f"errors: {kinds}", style="red"))
    if run["valid"]:
        parts.append(Text("valid: the generator kept up with the schedule", style="green"))
    else:
        parts.append(Text("INVALID run:", style="bold red"))
        parts += [Text(f"  - {reason}", style="red") for reason in run["invalid_reasons"]]
    for result in slo:
        parts.append(Text(f"slo {result.message}", style="green" if result.passed else "bold red"))
    for warning in run.get("warnings", []):
        parts.append(Text(f"warning: {warning}", style="yellow"))
    target = run.get("target") or {}
    if target.get("startup_s") is not None:
        parts.append(Text(f"target started in {target['startup_s']:.2f} s"))
    parts.append(Text(f"results: {run['result_dir']}", style="dim"))
    console.print(Group(*parts))
