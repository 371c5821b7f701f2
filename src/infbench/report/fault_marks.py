"""Fault markers on the report's time plots, from run.json's ``resilience`` section.

On every plot whose x axis is seconds since the run started: a purple line where each fault was
injected (named at the top), a purple band over the error window, a green line where latency had
recovered, a grey band from each supervised restart to the server's readiness; on the latency
plot also the recovery threshold (pre-fault p50 + 10 %) from the fault to the recovery. For a
kubernetes target, thin dashed lines where the Service removed a pod's endpoint (red) and added
one (green), and where a container restarted (grey): what the cluster did, next to what the
load saw. The
reader then sees the effect of a fault where it happened instead of reading it off a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infbench.analysis.resilience import FaultMarks, ResiliencePlot

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["draw_faults"]

FAULT_COLOR = "#6a3d9a"  # purple: the latency p99 line is already red
RECOVERED_COLOR = "#1a9850"
RESTART_COLOR = "#636363"
EVENT_STYLE = {
    "endpoint_removed": ("#d73027", "endpoint removed"),
    "endpoint_added": ("#1a9850", "endpoint added"),
    "container_restarted": ("#636363", "container restarted"),
}


class _Legend:
    """Each kind of marker labelled once: later ones get a name the legend leaves out."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self.seen:
            return "_" + name  # matplotlib leaves names starting with "_" out of the legend
        self.seen.add(name)
        return name


def _fault_line(ax: Axes, fault: FaultMarks, label: _Legend) -> None:
    """A line where the fault was injected, its action named at the top."""
    ax.axvline(fault.time_s, color=FAULT_COLOR, lw=1.6, zorder=3, label=label("fault"))
    ax.text(
        fault.time_s,
        0.90,
        " " + fault.label.split(" at ")[0],
        transform=ax.get_xaxis_transform(),
        ha="left",
        va="top",
        fontsize=8.5,
        color=FAULT_COLOR,
        clip_on=True,
    )


def _error_window(ax: Axes, fault: FaultMarks, label: _Legend) -> None:
    if fault.error_window is None:
        return
    start, end = fault.error_window
    # A window of one failed request has no width; keep it visible as a thin band.
    _band(ax, start, max(end, start + 0.2), FAULT_COLOR, 0.15, label("error window"))


def _band(ax: Axes, start: float, end: float, color: str, alpha: float, label: str | None) -> None:
    """A span of time behind the curves (zorder 1)."""
    ax.axvspan(start, end, color=color, alpha=alpha, lw=0, zorder=1, label=label)


def _recovery(ax: Axes, fault: FaultMarks, label: _Legend) -> None:
    if fault.recovered_at_s is None:
        return
    at = fault.recovered_at_s
    ax.axvline(at, color=RECOVERED_COLOR, ls=":", lw=1.6, zorder=3, label=label("recovered"))


def _threshold(ax: Axes, fault: FaultMarks, label: _Legend) -> None:
    """The recovery threshold, from the fault to its recovery (else to its end, else 1 s)."""
    if fault.threshold_ms is None:
        return
    end_s = fault.recovered_at_s if fault.recovered_at_s is not None else fault.end_s
    ax.hlines(
        fault.threshold_ms,
        fault.time_s,
        end_s if end_s is not None and end_s > fault.time_s else fault.time_s + 1.0,
        colors=RECOVERED_COLOR,
        linestyles="--",
        lw=1.0,
        zorder=3,
        label=label("recovery threshold"),
    )


def _restart(ax: Axes, exited_s: float, ready_s: float | None, label: _Legend) -> None:
    """A band from a supervised restart to readiness; never ready: to the end of the plot
    (so the x limits must be set first)."""
    end_s = ready_s if ready_s is not None and ready_s > exited_s else ax.get_xlim()[1]
    _band(ax, exited_s, end_s, RESTART_COLOR, 0.2, label("server restarting"))


def draw_faults(ax: Axes, plot: ResiliencePlot | None, latency_axis: bool = False) -> None:
    """Draw ``plot``'s markers on ``ax``; each kind is labelled once, for the legend."""
    if plot is None:
        return
    label = _Legend()
    for fault in plot.faults:
        _fault_line(ax, fault, label)
        _error_window(ax, fault, label)
        _recovery(ax, fault, label)
        if latency_axis:
            _threshold(ax, fault, label)
    for exited_s, ready_s in plot.restarts:
        _restart(ax, exited_s, ready_s, label)
    for time_s, event in plot.events:
        color, name = EVENT_STYLE.get(event, (RESTART_COLOR, event))
        ax.axvline(time_s, color=color, ls="--", lw=0.9, alpha=0.8, zorder=2, label=label(name))
