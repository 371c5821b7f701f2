"""The sweep's figure, latency-vs-load.png: latency (and TTFT, when the levels streamed) and
throughput against the offered rate of each level, from sweep.json's levels.

One panel function draws both percentile panels: the latency and TTFT panels differ only in
which of a level's figures they read and which SLO rules they mark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_FILE", "write_sweep_plot"]

PLOT_FILE = "latency-vs-load.png"
Level = Mapping[str, Any]


@dataclass(frozen=True)
class _Panel:
    """Which of a level's percentiles a panel draws (``{prefix}p50_ms`` ...) and how it reads."""

    prefix: str  # "" for latency, "ttft_" for TTFT
    label: str  # the legend's name for the curves ("" or "TTFT ")
    rules: tuple[str, ...]  # SLO metrics drawn as horizontal lines
    ylabel: str
    title: str


_LATENCY = _Panel(
    "",
    "",
    ("p50", "p90", "p95", "p99", "p999", "max", "mean"),
    "latency from intended send (ms)",
    "latency against offered load",
)
_TTFT = _Panel(
    "ttft_",
    "TTFT ",
    ("ttft", "ttft_p50", "ttft_p99"),
    "time to first token from intended send (ms)",
    "TTFT against offered load",
)


def _against_load(ax: Axes, doc: Mapping[str, Any], levels: Sequence[Level], panel: _Panel) -> None:
    """p50/p90/p99 of each level against its offered rate, with the sweep's rules, its invalid
    levels and its capacity interval."""
    rates = [level["rate"] for level in levels]
    for pct, fmt in (("p50", "o-"), ("p90", "s--"), ("p99", "^-")):
        values = [level.get(f"{panel.prefix}{pct}_ms") or math.nan for level in levels]
        ax.plot(rates, values, fmt, label=panel.label + pct)
    for rule in doc.get("slo", []):
        if rule["metric"] in panel.rules:
            ax.axhline(rule["value"], color="gray", linestyle=":", label=f"SLO {rule['metric']}")
    bad = [level for level in levels if not level.get("valid")]
    if bad:
        p99 = [level.get(f"{panel.prefix}p99_ms") or math.nan for level in bad]
        ax.plot([level["rate"] for level in bad], p99, "x", color="red", markersize=10,
                label="invalid run")  # fmt: skip
    result = doc.get("result") or {}
    if result.get("max_rate") and result.get("first_failing_rate"):
        ax.axvspan(result["max_rate"], result["first_failing_rate"], color="orange", alpha=0.25,
                   label="capacity interval")  # fmt: skip
    ax.set(xlabel="offered load (req/s)", ylabel=panel.ylabel, yscale="log", title=panel.title)
    ax.legend()


def _throughput(ax: Axes, levels: Sequence[Level]) -> None:
    rates = [level["rate"] for level in levels]
    ax.plot(rates, [level.get("achieved_rps") or math.nan for level in levels], "o-",
            label="achieved")  # fmt: skip
    ax.plot(rates, rates, ":", color="gray", label="offered")
    ax.set(xlabel="offered load (req/s)", ylabel="req/s", title="throughput")
    ax.legend()


def write_sweep_plot(directory: Path, doc: Mapping[str, Any]) -> str | None:
    """Draw the figure into ``directory``; its file name, or None when no level has a rate."""
    levels = sorted(
        (lv for lv in doc.get("levels") or [] if lv.get("rate")), key=lambda lv: lv["rate"]
    )
    if not levels:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    streamed = any(level.get("ttft_p50_ms") is not None for level in levels)
    fig, (left, *ttft, right) = plt.subplots(1, 2 + streamed, figsize=(11 + 5.5 * streamed, 4.2))
    _against_load(left, doc, levels, _LATENCY)
    for ax in ttft:  # a TTFT panel in the middle when the levels streamed
        _against_load(ax, doc, levels, _TTFT)
    _throughput(right, levels)
    rates = [level["rate"] for level in levels]
    for axis in (left, *ttft, right):
        if rates[-1] >= 8 * rates[0]:  # a geometric sweep reads best on a log axis
            axis.set_xscale("log")
        axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(directory / PLOT_FILE, dpi=110)
    plt.close(fig)
    return PLOT_FILE
