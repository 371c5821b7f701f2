"""Summaries computed from histograms and tallies: the numbers of the ``phases[]`` contract.

This is the home of the maths behind every table; formatters only read what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from .recorder import PhaseTally

__all__ = [
    "PERCENTILES",
    "PhaseInfo",
    "histogram_summary",
    "phase_summary",
    "validity",
]

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
LAG_LIMIT_MS = 1.0
LAG_LIMIT_FRACTION_OF_P50 = 0.05
GENERATOR_CPU_LIMIT_PCT = 90.0


@dataclass(frozen=True)
class PhaseInfo:
    name: str
    process: str
    duration_s: float
    scheduled: int


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 4)


def histogram_summary(hist: HdrHistogram, keys: tuple[str, ...] = ()) -> dict[str, float | None]:
    """Percentiles, max and mean in milliseconds; ``None`` everywhere for an empty histogram."""
    wanted = keys or (*PERCENTILES, "max", "mean")
    empty = hist.get_total_count() == 0
    result: dict[str, float | None] = {}
    for key in wanted:
        if empty:
            result[key] = None
        elif key == "max":
            result[key] = _ms(hist.get_max_value())
        elif key == "mean":
            result[key] = _ms(hist.get_mean_value())
        else:
            result[key] = _ms(hist.get_value_at_percentile(PERCENTILES[key]))
    return result


def phase_summary(tally: PhaseTally, info: PhaseInfo) -> dict[str, Any]:
    """One entry of run.json ``phases[]`` (DESIGN §8), plus error_rate and out_of_range."""
    duration = info.duration_s if info.duration_s > 0 else float("nan")
    failed = sum(tally.errors.values()) + tally.dropped
    attempted = tally.completed + tally.dropped
    hists = tally.histograms
    return {
        "name": info.name,
        "process": info.process,
        "duration_s": round(info.duration_s, 6),
        "scheduled": info.scheduled,
        "sent": tally.sent,
        "completed": tally.completed,
        "ok": tally.ok,
        "dropped": tally.dropped,
        "errors": dict(sorted(tally.errors.items())),
        "error_rate": round(failed / attempted, 6) if attempted else 0.0,
        "status_codes": {str(code): n for code, n in sorted(tally.statuses.items())},
        "offered_rps": round(info.scheduled / duration, 4) if info.scheduled else None,
        "achieved_rps": round(tally.completed / duration, 4),
        "goodput_rps": round(tally.ok_within_slo / duration, 4),
        "latency_ms": histogram_summary(hists["latency"]),
        "service_ms": histogram_summary(hists["service"]),
        "lag_ms": histogram_summary(hists["lag"], ("p50", "p99", "max")),
        "ttfb_ms": histogram_summary(hists["ttfb"], ("p50", "p99")),
        "failed_ms": histogram_summary(hists["failed"], ("p50", "p99", "max")),
        "bytes_in": tally.bytes_in,
        "bytes_out": tally.bytes_out,
        "out_of_range": tally.out_of_range,
    }


def validity(
    phases: list[dict[str, Any]], generator_cpu_pct: float | None
) -> tuple[bool, list[str]]:
    """A run is valid only when the generator kept up (DESIGN §5); reasons say why not."""
    reasons: list[str] = []
    for phase in phases:
        lag_p99 = phase["lag_ms"]["p99"]
        p50 = phase["latency_ms"]["p50"]
        limit = max(LAG_LIMIT_MS, LAG_LIMIT_FRACTION_OF_P50 * (p50 or 0.0))
        if lag_p99 is not None and lag_p99 > limit:
            reasons.append(
                f"phase {phase['name']}: send lag p99 {lag_p99:.3f} ms exceeds {limit:.3f} ms "
                "(the generator fell behind its schedule; lower the rate, raise "
                "client.connections, or use more client.processes)"
            )
        if phase["dropped"]:
            reasons.append(
                f"phase {phase['name']}: {phase['dropped']} arrivals dropped (no free connection "
                "within the request timeout; raise client.connections)"
            )
    if generator_cpu_pct is not None and generator_cpu_pct >= GENERATOR_CPU_LIMIT_PCT:
        reasons.append(
            f"generator CPU {generator_cpu_pct:.0f}% ≥ {GENERATOR_CPU_LIMIT_PCT:.0f}% of a core "
            "(its figures include its own queueing; use client.processes or client.sender: fast)"
        )
    return not reasons, reasons
