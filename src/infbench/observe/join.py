"""The server's view joined to the client's, phase by phase (DESIGN §8 ``phases[]``).

The Observer's probes leave per-phase figures in their ``server`` sections (``llm``, ``gpu``);
here they move into each ``phases[]`` entry beside the client's own: ``server_llm``, the
client's TTFT minus the server's (``outside_engine_ms``), ``gpu`` with energy per request and
per 1k output tokens, and ``cost``. What a run did not measure stays absent.

``outside_engine_ms`` is computed quantile by quantile: client TTFT p50 (from the intended
send time) − server TTFT p50, and the same for p99. It is the time users wait that the engine
did not see: infbench's own queue when it fell behind, the network, the HTTP front, the
tokenizer. The difference of two quantiles is not the quantile of the differences; it says
how the two distributions sit, not what one request lost. The server's quantile is only known
to its bucket, so each difference carries the range the bucket allows, and ``*_resolved``
says whether the client's figure lies outside the bucket at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from infbench.analysis.cost import phase_cost
from infbench.results.records import (
    GpuFigures,
    OutsideEngine,
    Percentiles,
    PhaseSummary,
    ServerLlm,
    ServerQuantiles,
)
from infbench.scenario.observing import Cost

__all__ = ["Joined", "join_observed", "outside_engine"]

PROBE_SECTIONS = ("llm", "gpu")


@dataclass(frozen=True)
class Joined:
    phases: list[PhaseSummary]
    server: dict[str, Any] | None  # the server section without the probes' phase figures
    warnings: list[str]


def join_observed(
    phases: list[PhaseSummary],
    server: Mapping[str, Any] | None,
    cost: Cost | None,
    instances: int,
) -> Joined:
    """Phases with the server's, the GPUs' and the cost figures; the warnings of the probes."""
    section = dict(server) if server is not None else None
    llm = _pop_phases(section, "llm")
    gpu = _pop_phases(section, "gpu")
    warnings = _warnings(section)
    preset = (section or {}).get("llm", {}).get("preset")
    joined = []
    for phase in phases:
        phase = _with_llm(phase, llm.get(phase.name), preset)
        phase = _with_gpu(phase, gpu.get(phase.name))
        if cost is not None:
            phase = replace(phase, cost=phase_cost(phase, cost, instances))
        joined.append(phase)
    return Joined(joined, section, warnings)


def _pop_phases(section: dict[str, Any] | None, key: str) -> dict[str, Any]:
    if section is None or not isinstance(section.get(key), Mapping):
        return {}
    probe = dict(section[key])
    section[key] = probe
    phases = probe.pop("phases", {})
    return dict(phases) if isinstance(phases, Mapping) else {}


def _warnings(section: dict[str, Any] | None) -> list[str]:
    """The observer's and each probe's warnings, taken out of the section into run.json's."""
    if section is None:
        return []
    out = list(section.pop("warnings", []))
    for key in PROBE_SECTIONS:
        probe = section.get(key)
        if isinstance(probe, dict):
            out += probe.pop("warnings", [])
    return out


def _with_llm(phase: PhaseSummary, figures: Any, preset: str | None) -> PhaseSummary:
    if not isinstance(figures, Mapping) or not any(v is not None for v in figures.values()):
        return phase
    llm = ServerLlm.from_json({**figures, "preset": preset})
    outside = outside_engine(phase.ttft_ms, llm.ttft_ms)
    return replace(phase, server_llm=llm, outside_engine_ms=outside)


def outside_engine(
    client: Percentiles | None, server: ServerQuantiles | None
) -> OutsideEngine | None:
    """Client TTFT − server TTFT at p50 and p99, with the range the server's bucket allows."""
    if client is None or server is None:
        return None
    figures: dict[str, Any] = {}
    for key in ("p50", "p99"):
        mine, theirs = getattr(client, key), getattr(server, key)
        bucket = getattr(server, f"{key}_bucket_ms")
        if mine is None or theirs is None:
            continue
        figures[key] = round(mine - theirs, 3)
        if bucket is not None:
            low, high = bucket
            figures[f"{key}_range_ms"] = [
                round(mine - high, 3) if high is not None else None,
                round(mine - low, 3) if low is not None else None,
            ]
            inside = (low is None or mine >= low) and (high is None or mine <= high)
            figures[f"{key}_resolved"] = not inside
    return OutsideEngine.from_json(figures) if figures else None


def _with_gpu(phase: PhaseSummary, figures: Any) -> PhaseSummary:
    if not isinstance(figures, Mapping) or not any(v is not None for v in figures.values()):
        return phase
    gpu = GpuFigures.from_json(figures)
    energy = gpu.energy_j
    per_request = energy / phase.completed if energy is not None and phase.completed else None
    tokens = phase.output_tokens
    per_1k = energy / tokens * 1000 if energy is not None and tokens else None
    return replace(
        phase,
        gpu=gpu,
        energy_j_per_request=_round(per_request),
        energy_j_per_1k_output_tokens=_round(per_1k),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
