"""The report's plot of an LLM server's own view over time: the client's TTFT p99 each second
(beside the server's own TTFT and queue-time p99), above the queue depth, the requests running
and the KV-cache use the server reported.

Read side by side they say why a TTFT rose: the queue filling, the batch full, the KV cache
near 100 % (where engines preempt). The gauges are timeseries.csv's (one sample a second,
observe/llm_metrics.py); the client's TTFT p99 per second comes from latency.hlog's interval
histograms, the server's from its histogram's increase over each second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from infbench.errors import ResultFormatError
from infbench.report.figures import Plot, encode, headroom, new_figure, shade_phases, style
from infbench.results.hlog import read_interval_log
from infbench.results.rundata import FloatArray, RunData, percentile_values

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["server_view_over_time", "ttft_p99_per_second"]

_GAUGES = (
    ("server_waiting", "waiting (queue depth)", "#d62728"),
    ("server_running", "running", "#1f77b4"),
)
# the server's own p99 each second (interpolated inside a bucket: run.json has the bounds)
_SERVER_TIMES = (
    ("server_ttft_p99_ms", "TTFT p99 (server)", "#9467bd"),
    ("server_queue_p99_ms", "queue time p99 (server)", "#8c564b"),
)


def ttft_p99_per_second(data: RunData) -> tuple[FloatArray, FloatArray]:
    """(second, TTFT p99 in ms) of the seconds that had a first token, every phase pooled."""
    path = data.run.path / "latency.hlog"
    try:
        log = read_interval_log(path) if path.exists() else {}
    except ResultFormatError:
        log = {}
    seconds: list[float] = []
    values: list[float] = []
    for phase in log.values():
        metric = phase.metric("ttft")
        busy = metric.counts.sum(axis=1) > 0
        if not busy.any():
            continue
        p99 = percentile_values(metric.counts[busy], metric.grid, np.array([99.0]))[:, 0]
        seconds += list(phase.seconds[busy].astype(float))
        values += list(p99 / 1000.0)  # the log's microseconds
    order = np.argsort(seconds)
    return np.asarray(seconds, dtype=float)[order], np.asarray(values, dtype=float)[order]


def _measured(data: RunData, column: str) -> bool:
    values = data.timeseries.get(column)
    return values is not None and bool(np.isfinite(values).any())


def server_view_over_time(data: RunData) -> Plot | None:
    """None when the server reported none of the gauges (no LLM preset matched)."""
    columns = [c for c, _, _ in _GAUGES] + ["server_kv_cache_usage"]
    if not any(_measured(data, c) for c in columns):
        return None
    x = data.timeseries["second"] + 0.5
    with style():
        fig, axes = new_figure(7.0, 3, 1, sharex=True)
        _ttft_panel(axes[0], data, x)
        _gauge_panel(axes[1], data, x)
        _kv_panel(axes[2], data, x)
        for ax in axes:
            shade_phases(ax, data.windows, labels=ax is axes[0])
        axes[-1].set_xlabel("time since the run started (s)")
        fig.suptitle("The LLM server's queue, batch and KV cache against TTFT")
        return Plot(
            "server-view",
            "LLM server: queue depth, running requests and KV-cache use against TTFT p99",
            "Three line charts over time: client and server TTFT p99 and server queue-time "
            "p99, the server's waiting and running "
            "requests, and its KV-cache use in percent",
            "Top: TTFT p99 per second as the client measured it (from the intended send time), "
            "and dashed, the server's own TTFT and queue-time p99 of that second (interpolated "
            "inside a histogram bucket; run.json gives each phase's bucket bounds). "
            "Below: queue depth, running requests and KV-cache use as the server reported them "
            "on its /metrics, sampled once a second.",
            encode(fig),
        )


def _ttft_panel(ax: Axes, data: RunData, x: FloatArray) -> None:
    seconds, p99 = ttft_p99_per_second(data)
    if len(seconds):
        ax.plot(seconds + 0.5, p99, color="#ff7f0e", marker=".", ms=4, label="TTFT p99 (client)")
    for column, label, color in _SERVER_TIMES:
        if _measured(data, column):
            ax.plot(x, data.timeseries[column], color=color, ls="--", marker=".", ms=4,
                    label=label)  # fmt: skip
    if ax.get_lines():
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_ylabel("p99 (ms)")
    headroom(ax)


def _gauge_panel(ax: Axes, data: RunData, x: FloatArray) -> None:
    for column, label, color in _GAUGES:
        if _measured(data, column):
            ax.plot(x, data.timeseries[column], color=color, marker=".", ms=4, label=label)
    ax.set_ylabel("requests")
    headroom(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _kv_panel(ax: Axes, data: RunData, x: FloatArray) -> None:
    if _measured(data, "server_kv_cache_usage"):
        kv = data.timeseries["server_kv_cache_usage"] * 100
        ax.plot(x, kv, color="#2ca02c", marker=".", ms=4, label="KV-cache use")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_ylabel("KV cache (%)")
    ax.set_ylim(0, 105)
