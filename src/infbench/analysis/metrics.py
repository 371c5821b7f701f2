"""The metric catalogue: every figure a rule or a comparison can name, and where it lives.

A metric name (``p99``, ``error_rate``, ``server_cpu_pct``…) maps to a key of a ``phases[]``
entry of run.json or of its ``server`` section, with its unit and which way is better. ``slo:``,
``--fail-on``, gate files, compare tables and sweeps all read names from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from infbench.figure_format import Unit, format_figure
from infbench.results.records import PhaseSummary, RunRecord

__all__ = [
    "COMPARE_METRICS",
    "HIGHER_IS_BETTER",
    "LATENCY_METRICS",
    "MEASURED_PATHS",
    "METRIC_PATHS",
    "SERVER_METRICS",
    "TURN_METRICS",
    "MetricSpec",
    "metric_value",
    "server_value",
    "turn_value",
]

# metric name -> (section of a phases[] entry, key): the PhaseSummary attribute, and the field
# of its figures record; None section means an attribute of the phase itself.
METRIC_PATHS: dict[str, tuple[str | None, str]] = {
    "p50": ("latency_ms", "p50"),
    "p90": ("latency_ms", "p90"),
    "p95": ("latency_ms", "p95"),
    "p99": ("latency_ms", "p99"),
    "p999": ("latency_ms", "p999"),
    "max": ("latency_ms", "max"),
    "mean": ("latency_ms", "mean"),
    "service_p50": ("service_ms", "p50"),
    "service_p99": ("service_ms", "p99"),
    "ttfb_p50": ("ttfb_ms", "p50"),
    "ttfb_p99": ("ttfb_ms", "p99"),
    "error_rate": (None, "error_rate"),
    "achieved_rps": (None, "achieved_rps"),
    "goodput_rps": (None, "goodput_rps"),
    # streamed phases (DESIGN §5b); in `slo:`, ttft and tpot bound every request (goodput)
    # and the phase's p99
    "ttft": ("ttft_ms", "p99"),
    "tpot": ("tpot_ms", "p99"),
    "ttft_p50": ("ttft_ms", "p50"),
    "ttft_p99": ("ttft_ms", "p99"),
    "tpot_p50": ("tpot_ms", "p50"),
    "tpot_p99": ("tpot_ms", "p99"),
    "itl_p50": ("itl_ms", "p50"),
    "itl_p99": ("itl_ms", "p99"),
    "output_tps": (None, "output_tps"),
    # the token audit (usage against request.tokenizer), in percent
    "token_mismatch": (None, "token_mismatch_pct"),
}
# Conversations (DESIGN §5c): TTFT of the requests of turn k, from phases[].turns.
MAX_COMPARED_TURNS = 16
TURN_METRICS: dict[str, tuple[int, str]] = {
    f"ttft_{q}_turn{k}": (k, q) for k in range(1, MAX_COMPARED_TURNS + 1) for q in ("p50", "p99")
}
HIGHER_IS_BETTER = frozenset({"achieved_rps", "goodput_rps", "output_tps"})
LATENCY_METRICS = frozenset(k for k, (section, _) in METRIC_PATHS.items() if section)


def metric_value(phase: PhaseSummary, metric: str) -> float | None:
    """A phase's figure by catalogue name (a number, else None)."""
    if metric in TURN_METRICS:
        return turn_value(phase, metric)
    section, key = METRIC_PATHS[metric]
    holder = getattr(phase, section) if section else phase
    value = getattr(holder, key, None)
    return float(value) if isinstance(value, int | float) else None


def turn_value(phase: PhaseSummary, metric: str) -> float | None:
    """TTFT p50/p99 of one turn index (``ttft_p50_turn2``), None without that turn."""
    turn, quantile = TURN_METRICS[metric]
    figures = next((t for t in phase.turns or () if t.turn == turn), None)
    value = getattr(figures.ttft_ms, quantile) if figures and figures.ttft_ms else None
    return float(value) if isinstance(value, int | float) else None


# Server-side figures (observe.py) by compare name -> field of ServerPhase (run.json's
# server.phases[<phase>]).
# Figures a phase has only when the run measured them (an LLM server's own view, GPUs, cost):
# compare name -> attribute path in a phases[] entry. Compared, like the server's figures, as
# point values and only where both runs have them; a server quantile is an interpolation
# inside a histogram bucket, so its rows are never tested, only shown (verdict ``~``).
MEASURED_PATHS: dict[str, tuple[str, ...]] = {
    "server_queue_p50": ("server_llm", "queue_ms", "p50"),
    "server_queue_p99": ("server_llm", "queue_ms", "p99"),
    "server_ttft_p50": ("server_llm", "ttft_ms", "p50"),
    "server_ttft_p99": ("server_llm", "ttft_ms", "p99"),
    "server_itl_p99": ("server_llm", "itl_ms", "p99"),
    "outside_engine_p50": ("outside_engine_ms", "p50"),
    "outside_engine_p99": ("outside_engine_ms", "p99"),
    "server_waiting_max": ("server_llm", "waiting_max"),
    "kv_cache_usage_max": ("server_llm", "kv_cache_usage_max"),
    "preemptions": ("server_llm", "preemptions"),
    "gpu_power_w": ("gpu", "power_mean_w"),
    "energy_j_per_request": ("energy_j_per_request",),
    "energy_j_per_1k_output_tokens": ("energy_j_per_1k_output_tokens",),
    "cost_per_1m_requests": ("cost", "per_1m_requests"),
    "cost_per_1m_output_tokens": ("cost", "per_1m_output_tokens"),
}

# Server-side figures (observe.py) by compare name -> field of ServerPhase (run.json's
# server.phases[<phase>]), and the measured figures above (by their path, read from phases[]).
SERVER_METRICS: dict[str, str] = {
    "server_p50": "duration_p50_ms",
    "server_p99": "duration_p99_ms",
    "server_cpu_pct": "cpu_pct_mean",
    "server_rss_mb": "rss_mb_max",
    **{name: ".".join(path) for name, path in MEASURED_PATHS.items()},
}


_FIGURE_UNITS: dict[str, Unit] = {
    "ms": "ms",
    "req/s": "/s",
    "%": "%",
    "MB": "MB",
    "tok/s": "/s",
    "plain": "plain",  # joules, a price (its currency in run.json), a share, a count
}


@dataclass(frozen=True)
class MetricSpec:
    """A compared metric: its unit, which way is better, and how a change is measured.

    ``absolute`` metrics (error_rate) change by differences (percentage points): a relative
    change from an error rate of zero means nothing.
    """

    name: str
    unit: Literal["ms", "req/s", "%", "MB", "tok/s", "plain"]
    higher_is_better: bool = False
    absolute: bool = False

    def format(self, value: float | None) -> str:
        """Four significant digits (a compare tells 19.98 from 20.00), the unit adapted."""
        if self.absolute:
            return format_figure(value, "fraction")  # error_rate is stored as a fraction
        return format_figure(value, _FIGURE_UNITS[self.unit], digits=4)

    def format_change(self, change: float | None) -> str:
        if change is None or not math.isfinite(change):
            return "–"
        if self.absolute:
            return f"{change * 100:+.2f}pp"
        return f"{change * 100:+.1f}%"


COMPARE_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("p50", "ms"),
        MetricSpec("p90", "ms"),
        MetricSpec("p99", "ms"),
        MetricSpec("p999", "ms"),
        MetricSpec("mean", "ms"),
        MetricSpec("service_p50", "ms"),
        MetricSpec("service_p99", "ms"),
        MetricSpec("achieved_rps", "req/s", higher_is_better=True),
        MetricSpec("goodput_rps", "req/s", higher_is_better=True),
        MetricSpec("error_rate", "%", absolute=True),
        MetricSpec("ttft_p50", "ms"),
        MetricSpec("ttft_p99", "ms"),
        MetricSpec("tpot_p50", "ms"),
        MetricSpec("tpot_p99", "ms"),
        MetricSpec("itl_p50", "ms"),
        MetricSpec("itl_p99", "ms"),
        MetricSpec("output_tps", "tok/s", higher_is_better=True),
        *(MetricSpec(name, "ms") for name in TURN_METRICS),
        MetricSpec("server_p50", "ms"),
        MetricSpec("server_p99", "ms"),
        MetricSpec("server_cpu_pct", "%"),
        MetricSpec("server_rss_mb", "MB"),
        *(MetricSpec(name, "ms") for name in MEASURED_PATHS if name.endswith(("_p50", "_p99"))),
        *(
            MetricSpec(name, "plain")
            for name in MEASURED_PATHS
            if not name.endswith(("_p50", "_p99"))
        ),
    )
}


def server_value(run: RunRecord, phase: str, metric: str) -> float | None:
    """A server-side figure of one phase, or None when the run has no server metrics."""
    if metric in MEASURED_PATHS:
        holder: object = run.phase(phase)
        for name in MEASURED_PATHS[metric]:
            holder = getattr(holder, name, None)
        return float(holder) if isinstance(holder, int | float) else None
    figures = run.server_phase(phase)
    value = getattr(figures, SERVER_METRICS[metric]) if figures is not None else None
    return float(value) if isinstance(value, int | float) else None
