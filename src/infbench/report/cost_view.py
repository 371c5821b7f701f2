"""Cost in a sweep: each level's cost per 1M output tokens (and requests), the cost at the SLO
capacity that ``sweep --find-max`` found, and a plot of throughput against latency with the
cost written at each level (``cost.png`` beside the sweep's own plot).

The figures are the levels' run.json ``cost`` (analysis/cost.py): the instances' price at the
throughput each level achieved. The cost at capacity is the level at ``max_rate``, the highest
rate that met the SLO: what a token costs at the latency the SLO promises.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console

from infbench.figure_format import significant
from infbench.results.records import PhaseSummary

__all__ = ["COST_PLOT", "cost_at_capacity", "cost_entry", "print_cost", "write_cost_plot"]

COST_PLOT = "cost.png"


def cost_entry(entry: PhaseSummary) -> dict[str, Any]:
    """sweep.json's cost keys of one level; none when the scenario has no ``cost:``."""
    cost = entry.cost
    if cost is None:
        return {}
    return {
        "cost_per_1m_requests": cost.per_1m_requests,
        "cost_per_1m_output_tokens": cost.per_1m_output_tokens,
        "currency": cost.currency,
    }


def cost_at_capacity(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The cost figures of the level at the capacity (the highest rate meeting the SLO)."""
    rate = (doc.get("result") or {}).get("max_rate")
    level = next((lv for lv in doc.get("levels", []) if lv.get("rate") == rate), None)
    if rate is None or level is None or "currency" not in level:
        return None
    keys = ("cost_per_1m_requests", "cost_per_1m_output_tokens", "currency")
    return {"rate": rate, **{key: level.get(key) for key in keys}}


def _money(value: float | None, currency: str) -> str:
    return "–" if value is None else f"{significant(value, 4)} {currency}"


def print_cost(console: Console, doc: dict[str, Any]) -> None:
    """One line: the cost at the capacity, when the scenario priced its instances."""
    at = cost_at_capacity(doc)
    if at is None:
        return
    currency = at["currency"] or ""
    console.print(
        f"cost at the SLO capacity ({significant(at['rate'])} req/s): "
        f"{_money(at['cost_per_1m_output_tokens'], currency)} per 1M output tokens, "
        f"{_money(at['cost_per_1m_requests'], currency)} per 1M requests",
        style="bold",
        highlight=False,
    )


def write_cost_plot(directory: Path, doc: dict[str, Any]) -> str | None:
    """Achieved throughput against latency p99, each level labelled with its cost per 1M
    output tokens; None when the levels carry no cost."""
    levels = sorted(
        (lv for lv in doc.get("levels") or [] if lv.get("rate") and "currency" in lv),
        key=lambda lv: lv["rate"],
    )
    if not levels:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = [lv.get("achieved_rps") or math.nan for lv in levels]
    y = [lv.get("ttft_p99_ms") or lv.get("p99_ms") or math.nan for lv in levels]
    ax.plot(x, y, "o-", color="#1f77b4")
    for lv, xi, yi in zip(levels, x, y, strict=True):
        per_tok = lv.get("cost_per_1m_output_tokens") or lv.get("cost_per_1m_requests")
        unit = "/1M tok" if lv.get("cost_per_1m_output_tokens") else "/1M req"
        if per_tok is not None:
            label = f"{significant(per_tok, 3)} {lv['currency']}{unit}"
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 6), fontsize=8)
    at = cost_at_capacity(doc)
    if at is not None:
        ax.axvline(at["rate"], color="orange", linestyle=":", label="SLO capacity (offered)")
        ax.legend()
    streamed = any(lv.get("ttft_p99_ms") for lv in levels)
    ax.set(xlabel="achieved throughput (req/s)",
           ylabel="TTFT p99 (ms)" if streamed else "latency p99 (ms)",
           title="throughput against latency, cost per 1M at each level")  # fmt: skip
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(directory / COST_PLOT, dpi=110)
    plt.close(fig)
    return COST_PLOT
