"""Figure helpers shared by every plot of the report: style, canvas, axes, phase shading, PNG.

matplotlib is imported inside the functions that draw, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from infbench.results.rundata import Distribution, FloatArray, PhaseWindow, RunData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "PERCENTILE_TICKS",
    "PHASE_COLORS",
    "WIDTH_IN",
    "Plot",
    "encode",
    "headroom",
    "integer_ticks",
    "legend_below",
    "log_ticks",
    "new_figure",
    "percentile_axis",
    "percentile_curve",
    "percentile_figure",
    "phase_color",
    "shade_phases",
    "style",
]

WIDTH_IN = 11.0
DPI = 100
PHASE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
PERCENTILE_TICKS = (0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)
_STYLE: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10.5,
    "legend.fontsize": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True)
class Plot:
    """One figure of the page: an anchor, a title, alt text for the image, a caption."""

    key: str
    title: str
    alt: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@contextmanager
def style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        yield


def new_figure(height_in: float, rows: int = 1, cols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """A figure on its own Agg canvas and its axes as a flat array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes.ravel()


def encode(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def phase_color(index: int) -> str:
    return PHASE_COLORS[index % len(PHASE_COLORS)]


def shade_phases(ax: Axes, windows: Sequence[PhaseWindow], labels: bool = True) -> None:
    """Alternate bands behind the data, each named at the top; the warm-up hatched grey."""
    for index, window in enumerate(windows):
        color = "#bbbbbb" if window.warmup else ("#e8eef7" if index % 2 else "#f6f1e6")
        ax.axvspan(
            window.start_s,
            window.end_s,
            color=color,
            alpha=0.5 if window.warmup else 1.0,
            hatch="//" if window.warmup else None,
            lw=0,
            zorder=0,
        )
        if not labels:
            continue
        ax.text(
            (window.start_s + window.end_s) / 2,
            0.98,
            "warm-up" if window.warmup else window.name,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=9.5,
            color="#333333",
            clip_on=True,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.5},
        )


def headroom(ax: Axes) -> None:
    """From zero to a little above the data, so the phase names stay clear of the lines."""
    ax.set_ylim(0, max(ax.get_ylim()[1], 1e-9) * 1.14)


def log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Ticks at 1, 2, 5 × 10^k written as plain numbers (0.5, 10, 200), not as powers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    exponents = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks = [m * 10.0**e for e in exponents for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    if len(ticks) < 2:
        return
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(NullLocator())


def legend_below(ax: Axes, columns: int = 4) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=columns, frameon=False)


def integer_ticks(axis: Any) -> None:
    """Counts of requests: no 2.5 on the axis."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def percentile_axis(ax: Axes, largest_count: int) -> None:
    """x as 1/(1−p) on a log scale, so every extra nine of the tail gets the same width.

    The axis ends just past the last percentile the largest sample resolves (1 − 1/n).
    """
    right = max(100.0, 1.06 * largest_count)
    ticks = [p for p in PERCENTILE_TICKS if 1 / (1 - p / 100) <= right]
    ax.set_xscale("log")
    ax.set_xlim(1, right)
    ax.set_xticks([1 / (1 - p / 100) for p in ticks], [f"{p:g}%" for p in ticks])
    ax.minorticks_off()
    ax.set_xlabel("percentile (log scale of 1/(1 − p))")


def percentile_curve(dist: Distribution) -> tuple[FloatArray, FloatArray]:
    """(1/(1−p), value ms) from 0 % to the last percentile the sample resolves (1 − 1/n)."""
    x = np.logspace(0, math.log10(max(dist.total, 2)), 400)
    return x, dist.at_ms(100.0 * (1.0 - 1.0 / x))


def percentile_figure(
    data: RunData, metrics: tuple[str, str], labels: tuple[str, str], ylabel: str, title: str
) -> Figure | None:
    """A figure of one metric by percentile per phase (solid), a second one dashed beside it."""
    solid, dashed = (data.distributions.get(m, {}) for m in metrics)
    if not solid:
        return None
    fig, (ax,) = new_figure(4.8)
    for index, name in enumerate(data.phase_names):
        color = phase_color(index)
        if name in solid:
            ax.plot(*percentile_curve(solid[name]), color=color, label=f"{name} {labels[0]}")
        if name in dashed:
            x, y = percentile_curve(dashed[name])
            ax.plot(x, y, "--", color=color, lw=1, label=f"{name} {labels[1]}")
    percentile_axis(ax, max(d.total for d in [*solid.values(), *dashed.values()]))
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    legend_below(ax, max(len(solid), 2))  # a column per phase: solid over dashed
    return fig
