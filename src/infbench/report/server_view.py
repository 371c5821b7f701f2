"""Console grids of the LLM server's own view, the GPUs and the cost (report/console.py calls
``observed_grids`` with one line).

A server quantile is shown as the bucket it lies in (``10–20 ms``), never as the
interpolation inside it: the server's histogram resolved no more. The time outside the
engine (client TTFT − server TTFT) is shown as the range that bucket allows; a range that
spans 0 means the buckets cannot tell the client's figure from the server's.
"""

from __future__ import annotations

from collections.abc import Sequence

from infbench.figure_format import MISSING, format_figure, significant
from infbench.report.page import table
from infbench.report.tables import Grid, new_grid
from infbench.results.measured import MEASURED_COLUMNS, measured_rows
from infbench.results.records import PhaseSummary, RunRecord, ServerQuantiles
from infbench.results.rundir import format_cell

__all__ = ["bucket_text", "measured_html", "observed_grids", "quantile_text"]

Bounds = Sequence[float | None] | None


def _unit(upper_ms: float) -> tuple[str, float]:
    if upper_ms >= 1000:
        return "s", 1e-3
    return ("ms", 1.0) if upper_ms >= 1 else ("µs", 1e3)


def _bound(value: float, factor: float) -> str:
    return f"{value * factor:.4g}"


def bucket_text(bounds: Bounds) -> str:
    """``10–20 ms`` for a bucket's bounds in ms; ``> 2.56 s`` for the unbounded top one."""
    if bounds is None or len(bounds) != 2:
        return MISSING
    low, high = bounds
    if low is None:
        return MISSING
    if high is None:
        return "> " + format_figure(low, "ms")
    unit, factor = _unit(max(abs(high), abs(low)))
    return f"{_bound(low, factor)}–{_bound(high, factor)} {unit}"


def quantile_text(value: float | None, bounds: Bounds) -> str:
    """A server quantile as its bucket; the bare value only where no bucket was recorded."""
    return bucket_text(bounds) if bounds is not None else format_figure(value, "ms")


def observed_grids(run: RunRecord) -> list[Grid]:
    """The LLM server's grid and the GPU/cost grid, each only when some phase measured it."""
    grids = [_llm_grid(run.phases), _gpu_cost_grid(run.phases)]
    return [grid for grid in grids if grid is not None]


def _q(figures: ServerQuantiles | None, key: str) -> str:
    if figures is None:
        return MISSING
    return quantile_text(getattr(figures, key), getattr(figures, f"{key}_bucket_ms"))


def _llm_grid(phases: Sequence[PhaseSummary]) -> Grid | None:
    grid = new_grid(
        "LLM server, its own histograms (bucket ranges); outside engine = client TTFT − server",
        ("phase", "queue p50", "TTFT p50", "TTFT p99", "outside p50", "outside p99",
         "running", "waiting max", "KV max", "preempted", "prefix hits"),
    )  # fmt: skip
    for phase in phases:
        llm, out = phase.server_llm, phase.outside_engine_ms
        if llm is None:
            continue
        grid.add_row(
            phase.name,
            _q(llm.queue_ms, "p50"),
            _q(llm.ttft_ms, "p50"),
            _q(llm.ttft_ms, "p99"),
            bucket_text(out.p50_range_ms) if out else MISSING,
            bucket_text(out.p99_range_ms) if out else MISSING,
            format_figure(llm.running_mean),
            format_figure(llm.waiting_max),
            format_figure(llm.kv_cache_usage_max, "fraction"),
            format_figure(llm.preemptions, "count"),
            format_figure(llm.prefix_cache_hit_rate, "fraction"),
        )
    return grid if grid.rows else None  # no phase measured these figures


def _money(value: float | None, currency: str | None) -> str:
    return MISSING if value is None else f"{significant(value, 4)} {currency or ''}".strip()


def _gpu_cost_grid(phases: Sequence[PhaseSummary]) -> Grid | None:
    grid = new_grid(
        "GPU and cost (energy integrated over the phase; cost at its achieved throughput)",
        ("phase", "GPU util %", "mem MB", "power W", "energy J", "J/req", "J/1k tok",
         "per 1M req", "per 1M tok"),
    )  # fmt: skip
    for phase in phases:
        gpu, cost = phase.gpu, phase.cost
        if gpu is None and cost is None:
            continue
        currency = cost.currency if cost else None
        grid.add_row(
            phase.name,
            *(
                format_figure(v)
                for v in (
                    gpu.util_mean if gpu else None,
                    gpu.mem_used_max_mb if gpu else None,
                    gpu.power_mean_w if gpu else None,
                    gpu.energy_j if gpu else None,
                    phase.energy_j_per_request,
                    phase.energy_j_per_1k_output_tokens,
                )
            ),
            _money(cost.per_1m_requests if cost else None, currency),
            _money(cost.per_1m_output_tokens if cost else None, currency),
        )
    return grid if grid.rows else None  # no phase measured these figures


def measured_html(run: RunRecord) -> str:
    """report.html's table of summary.csv's measured columns; "" when no phase has them."""
    rows = measured_rows(run.phases)
    if rows is None:
        return ""
    intro = (
        "<p>The server's own histograms are known to their buckets: its quantiles (ms) are "
        "interpolations inside them (run.json holds each bucket's bounds). Outside engine = "
        "client TTFT from the intended send − server TTFT, quantile by quantile. Energy is "
        "power integrated over the phase; cost is at the phase's achieved throughput.</p>"
    )
    headers = ["phase", *MEASURED_COLUMNS]
    cells = [[format_cell(v) for v in row] for row in rows]
    return "<h3>LLM server, GPU and cost</h3>" + intro + table(headers, cells, table_id="measured")
