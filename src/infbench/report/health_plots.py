"""The report's plots of the run's health: server and generator resources, and send lag."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from infbench.analysis.stats import LAG_LIMIT_FRACTION_OF_P50, LAG_LIMIT_MS
from infbench.report import figures
from infbench.report.figures import Plot
from infbench.results.rundata import FloatArray, RunData

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["lag_distribution", "loop_lag_distribution", "resources"]

# Panels of the resources figure: (y label, [(timeseries column, legend label, color)]).
_PANELS = (
    (
        "CPU (% of one core)",
        [
            ("server_cpu_pct", "server (process tree)", "#d62728"),
            ("generator_cpu_pct", "load generator", "#7f7f7f"),
        ],
    ),
    (
        "memory RSS (MB)",
        [
            ("server_rss_mb", "server (process tree)", "#9467bd"),
            ("generator_rss_mb", "load generator", "#7f7f7f"),
        ],
    ),
    (
        "requests",
        [
            ("server_batch_size", "adaptive batch size (mean)", "#2ca02c"),
            ("server_in_progress", "in progress at the server", "#17becf"),
        ],
    ),
)


def _measured(values: FloatArray) -> bool:
    return bool(np.isfinite(values).any())


def _panel(
    ax: Axes, data: RunData, ylabel: str, lines: list[tuple[str, str, str]], top: bool
) -> None:
    x = data.timeseries["second"] + 0.5
    figures.shade_phases(ax, data.windows, labels=top)
    for column, label, color in lines:
        values = data.timeseries[column]
        if _measured(values):
            ax.plot(x, values, color=color, marker=".", ms=4, label=label)
    ax.set_ylabel(ylabel)
    figures.headroom(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def resources(data: RunData) -> Plot | None:
    """Server CPU, RSS and batch size (with the generator's own CPU and RSS), when sampled."""
    panels = [
        (label, lines)
        for label, lines in _PANELS
        if any(_measured(data.timeseries[column]) for column, _, _ in lines)
    ]
    if not panels:
        return None
    server = any(_measured(data.timeseries[c]) for c in data.timeseries if c.startswith("server"))
    with figures.style():
        fig, axes = figures.new_figure(2.4 * len(panels) + 0.6, len(panels), 1, sharex=True)
        for index, (ax, (label, lines)) in enumerate(zip(axes, panels, strict=True)):
            _panel(ax, data, label, lines, top=index == 0)
        axes[-1].set_xlabel("time since the run started (s)")
        if data.windows:
            axes[-1].set_xlim(0, max(w.end_s for w in data.windows) + 1)
        fig.suptitle("Server and generator resources over time")
        caption = (
            "Sampled once a second: CPU and RSS of the server's whole process tree and of the "
            "load generator; the adaptive batch size from the server's /metrics."
        )
        if not server:
            caption += " This run measured no server figures (no process to sample, no /metrics)."
        return Plot(
            "resources",
            "Server and generator resources",
            "Line charts: CPU percent, memory RSS in MB and adaptive batch size per second",
            caption,
            figures.encode(fig),
        )


def _lag_limits(data: RunData, loop: bool = False) -> list[tuple[str, float, str]]:
    """The validity bound on each phase's send lag p99, or loop lag p99 (DESIGN §5), as
    (label, ms, color): one line when the phases' bounds are within 10 % of each other, else
    one per phase. Loop lag's bound follows TTFT p50 where the phase streamed."""
    limits = {}
    for phase in data.run.phases:
        base = phase.ttft_ms.p50 if loop and phase.ttft_ms is not None else phase.latency_ms.p50
        base = base if isinstance(base, int | float) else 0.0
        limits[phase.name] = max(LAG_LIMIT_MS, LAG_LIMIT_FRACTION_OF_P50 * base)
    if not limits:
        return []
    low, high = min(limits.values()), max(limits.values())
    if high <= 1.1 * low:
        span = f"{low:.3g} ms" if high - low < 0.0005 else f"{low:.3g}–{high:.3g} ms"
        return [(f"validity bound on p99 ({span})", low, "#d62728")]
    return [
        (f"{name}: bound on p99 ({limit:.3g} ms)", limit, figures.phase_color(index))
        for index, (name, limit) in enumerate(limits.items())
    ]


def lag_distribution(data: RunData) -> Plot | None:
    return _lag_plot(
        data,
        "lag",
        ("send lag", "Send lag by percentile, per phase (sent − intended)"),
        "How late the generator sent each request against its schedule. A run is valid "
        "only while each phase's p99 stays under the dotted bound (the larger of 1 ms and "
        "5 % of the phase's latency p50).",
    )


def loop_lag_distribution(data: RunData) -> Plot | None:
    return _lag_plot(
        data,
        "loop_lag",
        ("loop lag", "Loop lag by percentile, per phase (lateness of a 1 ms timer)"),
        "How late each generator's event loop served a timer due every millisecond: how long "
        "answers that had arrived waited to be read. A run is valid only while each phase's "
        "p99 stays under the dotted bound (the larger of 1 ms and 5 % of the phase's p50 "
        "time to the first token, or of its latency p50 when not streamed); above it the "
        "figures include the generator's own delay.",
    )


def _lag_plot(data: RunData, metric: str, names: tuple[str, str], caption: str) -> Plot | None:
    lag = data.distributions.get(metric)
    if not lag:
        return None
    label, title = names
    with figures.style():
        fig, (ax,) = figures.new_figure(4.4)
        for index, name in enumerate(data.phase_names):
            if name in lag:
                x, y = figures.percentile_curve(lag[name])
                ax.plot(x, np.maximum(y, 0.001), color=figures.phase_color(index), label=name)
        for text, limit, color in _lag_limits(data, loop=metric == "loop_lag"):
            ax.axhline(limit, ls=":", lw=1.5, color=color, label=text)
        figures.percentile_axis(ax, max(d.total for d in lag.values()))
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high)
        figures.log_ticks(ax.yaxis, low, high)
        ax.set_ylabel(f"{label} (ms, log scale)")
        ax.set_title(title)
        figures.legend_below(ax)
        return Plot(
            metric,
            f"{label.capitalize()} distribution",
            f"Line chart: {label} in milliseconds against percentile on a log scale, one line "
            "per phase, with the validity bound dotted",
            caption,
            figures.encode(fig),
        )
