"""Plots of a comparison: both runs' percentile distributions and latency over time, overlaid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from infbench.report import figures
from infbench.report.figures import Plot
from infbench.results.rundata import RunData

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "BASE_COLOR",
    "CAND_COLOR",
    "PercentileFigure",
    "compare_by_percentile",
    "compare_latency_over_time",
    "compare_percentiles",
]

BASE_COLOR = "#1f77b4"
CAND_COLOR = "#ff7f0e"


@dataclass(frozen=True)
class PercentileFigure:
    """One figure of a comparison by percentile, a panel per phase: which distribution it draws
    (solid) beside which (dashed), and its words."""

    solid: str  # a RunData.distributions key: "latency", "ttft"
    dashed: str  # the same figure from the actual send: "service", "ttft_sent"
    solid_label: str
    dashed_label: str
    ylabel: str
    legend: Literal["upper left", "lower right"]  # where each panel has room for it
    key: str
    suptitle: str
    title: str
    alt: str
    caption: str


LATENCY_BY_PERCENTILE = PercentileFigure(
    "latency",
    "service",
    "latency",
    "service time",
    "latency (ms)",
    "upper left",
    "compare-percentiles",
    "Latency by percentile per phase: base vs candidate",
    "Percentile distributions, base vs candidate",
    "Line charts, one per phase: latency in milliseconds against percentile on a log "
    "scale of 1/(1-p), base in blue and candidate in orange, service time dashed",
    "A candidate curve below the base is faster at that percentile. The verdicts in the "
    "table say which differences are beyond noise.",
)


def _percentile_panel(
    ax: Axes, base: RunData, cand: RunData, phase: str, spec: PercentileFigure
) -> None:
    largest = 2
    for data, label, color in ((base, "base", BASE_COLOR), (cand, "candidate", CAND_COLOR)):
        dist = data.distributions[spec.solid][phase]
        largest = max(largest, dist.total)
        ax.plot(*figures.percentile_curve(dist), color=color, label=f"{label} {spec.solid_label}")
        if phase in data.distributions[spec.dashed]:
            x, y = figures.percentile_curve(data.distributions[spec.dashed][phase])
            ax.plot(x, y, "--", color=color, lw=1, label=f"{label} {spec.dashed_label}")
    figures.percentile_axis(ax, largest)
    ax.set_ylabel(spec.ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(phase)
    ax.legend(loc=spec.legend, fontsize=9)


def compare_by_percentile(
    base: RunData, cand: RunData, phases: Sequence[str], spec: PercentileFigure
) -> Plot | None:
    """One panel per phase both runs measured: base and candidate by percentile."""
    both = base.distributions[spec.solid].keys() & cand.distributions[spec.solid].keys()
    shown = [phase for phase in phases if phase in both]
    if not shown:
        return None
    cols = min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    with figures.style():
        fig, axes = figures.new_figure(3.6 * rows + 0.6, rows, cols)
        for ax, phase in zip(axes, shown, strict=False):
            _percentile_panel(ax, base, cand, phase, spec)
        for ax in axes[len(shown) :]:
            ax.set_visible(False)
        fig.suptitle(spec.suptitle)
        return Plot(spec.key, spec.title, spec.alt, spec.caption, figures.encode(fig))


def compare_percentiles(base: RunData, cand: RunData, phases: Sequence[str]) -> Plot | None:
    """Latency (service time dashed) of both runs by percentile, a panel per phase."""
    return compare_by_percentile(base, cand, phases, LATENCY_BY_PERCENTILE)


def compare_latency_over_time(base: RunData, cand: RunData) -> Plot | None:
    """p50 and p99 per second of both runs on one time axis (phases shaded as in the base)."""
    if not len(base.seconds) and not len(cand.seconds):
        return None
    with figures.style():
        fig, (ax,) = figures.new_figure(4.6)
        figures.shade_phases(ax, base.windows)
        for data, label, color in ((base, "base", BASE_COLOR), (cand, "candidate", CAND_COLOR)):
            x = data.seconds + 0.5
            ax.plot(
                x, data.percentiles["latency_p99"], color=color, marker=".", label=f"{label} p99"
            )
            ax.plot(x, data.percentiles["latency_p50"], "--", color=color, label=f"{label} p50")
        ax.set_xlabel("time since the run started (s)")
        ax.set_ylabel("latency (ms)")
        figures.headroom(ax)
        ax.set_title("Latency over time: base vs candidate (per second)")
        figures.legend_below(ax)
        return Plot(
            "compare-latency-over-time",
            "Latency over time, base vs candidate",
            "Line chart: latency p50 (dashed) and p99 (solid) in milliseconds per second for "
            "the base (blue) and the candidate (orange)",
            "Both runs from their own start; phase bands are the base's. Look for a difference "
            "that holds through a phase rather than a single spike.",
            figures.encode(fig),
        )
