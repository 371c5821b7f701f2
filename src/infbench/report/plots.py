"""The report's plots of one run, drawn with matplotlib's Agg canvas into inline PNGs.

matplotlib is imported inside the functions that draw, so importing this module (and running
``infbench --help``) stays fast. No pyplot: each figure owns an Agg canvas, nothing global.
Each function returns None when the run has nothing to draw (the page then says so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from infbench.analysis.resilience import resilience_plot_data
from infbench.report import figures
from infbench.report.fault_marks import draw_faults
from infbench.report.figures import Plot
from infbench.report.health_plots import lag_distribution, loop_lag_distribution, resources
from infbench.report.token_plots import token_plots
from infbench.results.rundata import Distribution, FloatArray, RunData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["run_plots"]


def _time_axis(ax: Axes, data: RunData, ylabel: str, latency_axis: bool = False) -> None:
    figures.shade_phases(ax, data.windows)
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel(ylabel)
    figures.headroom(ax)
    if data.windows:
        ax.set_xlim(0, max(w.end_s for w in data.windows) + 1)
    draw_faults(ax, resilience_plot_data(data.run.record.resilience), latency_axis)


def _figure_data(fig: Figure, key: str, title: str, alt: str, caption: str) -> Plot:
    return Plot(key, title, alt, caption, figures.encode(fig))


# --- the plots -----------------------------------------------------------------------------------


def latency_over_time(data: RunData) -> Plot | None:
    if not len(data.seconds):
        return None
    x = data.seconds + 0.5
    with figures.style():
        fig, (ax,) = figures.new_figure(4.4)
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
        figures.legend_below(ax)
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
    with figures.style():
        fig, (ax,) = figures.new_figure(4.0)
        ax.plot(x, series["offered"], "--", color="#7f7f7f", marker=".", label="offered (due)")
        ax.plot(x, series["completed"], color="#1f77b4", marker=".", label="achieved (completed)")
        ax.plot(x, series["completed"] - series["errors"], color="#2ca02c", lw=1, label="ok")
        _time_axis(ax, data, "requests per second")
        ax.set_title("Offered vs achieved rate")
        figures.legend_below(ax, 3)
        return _figure_data(
            fig,
            "rate-over-time",
            "Offered vs achieved rate",
            "Line chart: offered, achieved and successful requests per second over the run",
            "Offered counts the arrivals due in each second; achieved counts the requests that "
            "completed in it. Achieved falling below offered means the server falls behind.",
        )


def percentile_distribution(data: RunData) -> Plot | None:
    with figures.style():
        fig = figures.percentile_figure(
            data,
            ("latency", "service"),
            ("latency", "service time"),
            "latency (ms)",
            "Latency by percentile, per phase (HDR)",
        )
        if fig is None:
            return None
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
    color = figures.phase_color(data.phase_names.index(name))
    for metric, label, shade in (("latency", "ok", color), ("failed", "failed", "#d62728")):
        dist = data.distributions[metric].get(name)
        if dist is not None:
            ms = dist.grid.mids / 1000.0
            ax.hist(ms, bins.tolist(), weights=dist.counts, color=shade, alpha=0.75, label=label)
    ax.set_title(name)
    if log:
        ax.set_xscale("log")
        figures.log_ticks(ax.xaxis, bins[0], bins[-1])
    ax.set_xlabel("latency (ms)" + (", log scale" if log else ""))
    ax.set_ylabel("requests")
    figures.integer_ticks(ax.yaxis)
    ax.legend(loc="upper right")


def latency_histogram(data: RunData) -> Plot | None:
    latency, failed = data.distributions["latency"], data.distributions["failed"]
    names = [n for n in data.phase_names if n in latency or n in failed]
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    bins, log = _histogram_bins([*latency.values(), *failed.values()])
    with figures.style():
        fig, axes = figures.new_figure(3.0 * rows + 0.6, rows, cols, sharex=True)
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
    with figures.style():
        fig, (ax,) = figures.new_figure(4.0)
        bottom = np.zeros(len(x))
        for index, (label, counts) in enumerate(sorted(data.errors.items())):
            ax.bar(x, counts, width=0.9, bottom=bottom, label=label, color=f"C{(index + 3) % 10}")
            bottom = bottom + counts
        _time_axis(ax, data, "failed requests per second")
        figures.integer_ticks(ax.yaxis)
        ax.set_title("Errors over time, by class")
        figures.legend_below(ax)
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

    def why(file: str, otherwise: str) -> str:
        gone = file in data.missing
        return f"not drawn, {file} is not in the result directory" if gone else otherwise

    hlog, series = "latency.hlog", "timeseries.csv"
    return [
        ("Latency over time", latency_over_time(data), why(hlog, "no completed requests")),
        ("Offered vs achieved rate", rate_over_time(data), why(series, "no per-second rows")),
        ("Percentile distribution", percentile_distribution(data), why(hlog, "no successes")),
        ("Latency histogram", latency_histogram(data), why(hlog, "no requests recorded")),
        *token_plots(data, why),  # streamed runs only
        ("Errors over time", errors_over_time(data), why("requests.csv.gz", "no failed requests")),
        ("Resources", resources(data), why(series, "no CPU, memory or batch samples")),
        ("Send lag", lag_distribution(data), why(hlog, "no requests were sent")),
        ("Loop lag", loop_lag_distribution(data), why(hlog, "no generator timed its loop")),
    ]
