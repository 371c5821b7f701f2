"""The report's plots of one run, drawn with matplotlib's Agg canvas into inline PNGs.

matplotlib is imported inside the functions that draw, so importing this module (and running
``infbench --help``) stays fast. No pyplot: each figure owns an Agg canvas, nothing global.
Each function returns None when the run has nothing to draw (the page then says so).
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

from infbench.analysis.resilience import resilience_plot_data
from infbench.report.fault_marks import draw_faults
from infbench.report.rundata import Distribution, FloatArray, PhaseWindow, RunData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Plot", "run_plots"]

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


def _time_axis(ax: Axes, data: RunData, ylabel: str, latency_axis: bool = False) -> None:
    shade_phases(ax, data.windows)
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel(ylabel)
    headroom(ax)
    if data.windows:
        ax.set_xlim(0, max(w.end_s for w in data.windows) + 1)
    draw_faults(ax, resilience_plot_data(data.run.data), latency_axis)


def _figure_data(fig: Figure, key: str, title: str, alt: str, caption: str) -> Plot:
    return Plot(key, title, alt, caption, encode(fig))


# --- the plots -----------------------------------------------------------------------------------


def latency_over_time(data: RunData) -> Plot | None:
    if not len(data.seconds):
        return None
    x = data.seconds + 0.5
    with style():
        fig, (ax,) = new_figure(4.4)
        lines = (
            ("latency_p50", "latency p50", "#1f77b4", "-"),
            ("latency_p99", "latency p99", "#d62728", "-"),
            ("service_p50", "service time p50", "#1f77b4", "--"),
            ("service_p99", "service time p99", "#d62728", "--"),
        )
        for key, label, color, dash in lines:
            ax.plot(x, data.percentiles[key], dash, color=color, label=label, marker=".", ms=4)
        _time_axis(ax, data, "latency (ms)", latency_axis=True)
        ax.set_title("Latency over time (per second, by completion time)")
        legend_below(ax)
        return _figure_data(
            fig,
            "latency-over-time",
            "Latency over time",
            "Line chart: latency and service time p50 and p99 in milliseconds per second of the "
            "run, phases shaded and named",
            "Latency is measured from the intended send time (coordinated omission corrected); "
            "service time from the actual send. A gap between them is time spent waiting in the "
            "generator.",
        )


def rate_over_time(data: RunData) -> Plot | None:
    series = data.timeseries
    if not len(series["second"]):
        return None
    x = series["second"] + 0.5
    with style():
        fig, (ax,) = new_figure(4.0)
        ax.plot(x, series["offered"], "--", color="#7f7f7f", marker=".", label="offered (due)")
        ax.plot(x, series["completed"], color="#1f77b4", marker=".", label="achieved (completed)")
        ax.plot(x, series["completed"] - series["errors"], color="#2ca02c", lw=1, label="ok")
        _time_axis(ax, data, "requests per second")
        ax.set_title("Offered vs achieved rate")
        legend_below(ax, 3)
        return _figure_data(
            fig,
            "rate-over-time",
            "Offered vs achieved rate",
            "Line chart: offered, achieved and successful requests per second over the run",
            "Offered counts the arrivals due in each second; achieved counts the requests that "
            "completed in it. Achieved falling below offered means the server falls behind.",
        )


def percentile_distribution(data: RunData) -> Plot | None:
    latency, service = data.distributions["latency"], data.distributions["service"]
    if not latency:
        return None
    with style():
        fig, (ax,) = new_figure(4.8)
        for index, name in enumerate(data.phase_names):
            color = phase_color(index)
            if name in latency:
                ax.plot(*percentile_curve(latency[name]), color=color, label=f"{name} latency")
            if name in service:
                x, y = percentile_curve(service[name])
                ax.plot(x, y, "--", color=color, lw=1, label=f"{name} service time")
        percentile_axis(ax, max(d.total for d in latency.values()))
        ax.set_ylabel("latency (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title("Latency by percentile, per phase (HDR)")
        legend_below(ax, max(len(latency), 2))  # a column per phase: latency over service
        return _figure_data(
            fig,
            "percentiles",
            "Percentile distribution per phase",
            "Line chart: latency in milliseconds against percentile from 0% to 99.99% on a "
            "log scale of 1/(1-p), one line per phase, service time dashed",
            "Read across to a percentile, up to its latency: each step to the right is one more "
            "nine. Curves end where the phase's requests run out (percentile 1 − 1/n).",
        )


def _histogram_bins(dists: Sequence[Distribution]) -> tuple[FloatArray, bool]:
    lo = min(float(d.grid.lows[np.flatnonzero(d.counts)[0]]) for d in dists) / 1000.0
    hi = max(float(d.grid.highs[np.flatnonzero(d.counts)[-1]]) for d in dists) / 1000.0
    lo, hi = max(lo, 0.001), max(hi, lo * 1.01 + 0.001)
    if hi / lo > 20:
        return np.geomspace(lo, hi * 1.001, 60), True
    return np.linspace(lo, hi * 1.001, 60), False


def _histogram_panel(ax: Axes, data: RunData, name: str, bins: FloatArray, log: bool) -> None:
    """One phase: successes in the phase's color, failures in red over them."""
    color = phase_color(data.phase_names.index(name))
    for metric, label, shade in (("latency", "ok", color), ("failed", "failed", "#d62728")):
        dist = data.distributions[metric].get(name)
        if dist is not None:
            ms = dist.grid.mids / 1000.0
            ax.hist(ms, bins.tolist(), weights=dist.counts, color=shade, alpha=0.75, label=label)
    ax.set_title(name)
    if log:
        ax.set_xscale("log")
        log_ticks(ax.xaxis, bins[0], bins[-1])
    ax.set_xlabel("latency (ms)" + (", log scale" if log else ""))
    ax.set_ylabel("requests")
    integer_ticks(ax.yaxis)
    ax.legend(loc="upper right")


def latency_histogram(data: RunData) -> Plot | None:
    latency, failed = data.distributions["latency"], data.distributions["failed"]
    names = [n for n in data.phase_names if n in latency or n in failed]
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    bins, log = _histogram_bins([*latency.values(), *failed.values()])
    with style():
        fig, axes = new_figure(3.0 * rows + 0.6, rows, cols, sharex=True)
        for ax, name in zip(axes, names, strict=False):
            _histogram_panel(ax, data, name, bins, log)
        for ax in axes[len(names) :]:
            ax.set_visible(False)
        fig.suptitle("Latency histogram per phase")
        return _figure_data(
            fig,
            "histogram",
            "Latency histogram per phase",
            "Histograms: number of requests by latency in milliseconds, one panel per phase, "
            "failed requests in red",
            "The shape behind the percentiles: a second hump or a long right tail shows requests "
            "that waited (queueing, batching, retries).",
        )


def errors_over_time(data: RunData) -> Plot | None:
    if not data.errors:
        return None
    x = data.error_seconds + 0.5
    with style():
        fig, (ax,) = new_figure(4.0)
        bottom = np.zeros(len(x))
        for index, (label, counts) in enumerate(sorted(data.errors.items())):
            ax.bar(x, counts, width=0.9, bottom=bottom, label=label, color=f"C{(index + 3) % 10}")
            bottom = bottom + counts
        _time_axis(ax, data, "failed requests per second")
        integer_ticks(ax.yaxis)
        ax.set_title("Errors over time, by class")
        legend_below(ax)
        return _figure_data(
            fig,
            "errors-over-time",
            "Errors over time",
            "Stacked bar chart: failed requests per second by error class",
            "Failed requests by the second they ended in and their class (timeout, connect, "
            "reset, protocol, http_4xx/5xx with the status, too_large, dropped).",
        )


def run_plots(data: RunData) -> list[tuple[str, Plot | None, str]]:
    """Every plot of the run report in page order, with the note shown when one is absent."""
    from infbench.report.health_plots import lag_distribution, resources

    def why(file: str, otherwise: str) -> str:
        gone = file in data.missing
        return f"not drawn, {file} is not in the result directory" if gone else otherwise

    hlog, series = "latency.hlog", "timeseries.csv"
    return [
        ("Latency over time", latency_over_time(data), why(hlog, "no completed requests")),
        ("Offered vs achieved rate", rate_over_time(data), why(series, "no per-second rows")),
        ("Percentile distribution", percentile_distribution(data), why(hlog, "no successes")),
        ("Latency histogram", latency_histogram(data), why(hlog, "no requests recorded")),
        ("Errors over time", errors_over_time(data), why("requests.csv.gz", "no failed requests")),
        ("Resources", resources(data), why(series, "no CPU, memory or batch samples")),
        ("Send lag", lag_distribution(data), why(hlog, "no requests were sent")),
    ]
