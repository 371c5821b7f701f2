"""The summary files' columns for what a run measured beside the load: the LLM server's own
view, the GPUs and the cost (summary.csv/.md and the report's table; DESIGN §8).

The columns appear only when some phase has one of the figures; an empty cell is a figure the
phase did not measure. Server quantiles are interpolations inside a histogram bucket: the
bucket's bounds are in run.json (``server_llm.*_ms.p50_bucket_ms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infbench.results.records import PhaseSummary

__all__ = ["MEASURED_COLUMNS", "measured_rows"]

MEASURED_COLUMNS = (
    "server_queue_p50_ms",
    "server_ttft_p50_ms",
    "server_ttft_p99_ms",
    "outside_engine_p50_ms",
    "outside_engine_p99_ms",
    "kv_cache_usage_max",
    "gpu_energy_j",
    "energy_j_per_1k_output_tokens",
    "cost_per_1m_requests",
    "cost_per_1m_output_tokens",
    "currency",
)


def _cells(phase: PhaseSummary) -> list[Any]:
    llm, out, gpu, cost = phase.server_llm, phase.outside_engine_ms, phase.gpu, phase.cost
    queue, ttft = (llm.queue_ms, llm.ttft_ms) if llm else (None, None)
    return [
        queue.p50 if queue else None,
        ttft.p50 if ttft else None,
        ttft.p99 if ttft else None,
        out.p50 if out else None,
        out.p99 if out else None,
        llm.kv_cache_usage_max if llm else None,
        gpu.energy_j if gpu else None,
        phase.energy_j_per_1k_output_tokens,
        cost.per_1m_requests if cost else None,
        cost.per_1m_output_tokens if cost else None,
        cost.currency if cost else None,
    ]


def measured_rows(phases: Sequence[PhaseSummary]) -> list[list[Any]] | None:
    """One row per phase (the phase name first), or None when no phase measured any."""
    if not any(p.server_llm or p.gpu or p.cost for p in phases):
        return None
    return [[phase.name, *_cells(phase)] for phase in phases]
