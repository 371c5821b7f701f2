"""The highest instantaneous rate a workload asks for (``infbench run`` compares it with the
calibrated capacity of the generator before it starts). Pure: a workload and its schedule in."""

from __future__ import annotations

from typing import Any

import numpy as np

from infbench.scenario import model
from infbench.schedule.arrivals import Schedule

__all__ = ["peak_rate"]


def _trace_peak(offsets: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    """Most arrivals in any window of one second (sliding, not aligned to whole seconds)."""
    if len(offsets) == 0:
        return 0.0
    ends = np.searchsorted(offsets, offsets + 1.0, side="left")
    return float(np.max(ends - np.arange(len(offsets))))


def _arrival_peak(arrival: model.Arrival, name: str, schedule: Schedule) -> float | None:
    match arrival:
        case model.ConstantArrival() | model.PoissonArrival() | model.GammaArrival():
            return float(arrival.rate)
        case model.OnOffArrival():
            return float(max(arrival.rate_on, arrival.rate_off))
        case model.RampArrival():
            return float(max(arrival.from_, arrival.to))
        case model.StepsArrival():
            return float(max(arrival.rates))
        case model.TraceArrival():
            plan = next((p for p in schedule.phases if p.name == name), None)
            return _trace_peak(plan.offsets) if plan and plan.offsets is not None else None
    return None  # closed loop: the rate is whatever the server allows


def peak_rate(workload: model.Workload, schedule: Schedule) -> float | None:
    """The highest instantaneous rate any phase asks for, in requests per second: ramp
    max(from, to), steps max(rates), onoff rate_on, constant/poisson/gamma rate, trace the most
    arrivals in a 1-second window. None when every phase is closed loop."""
    peaks = [_arrival_peak(p.arrival, p.name, schedule) for p in workload.phases]
    if workload.warmup is not None and workload.warmup.arrival is not None:
        peaks.append(_arrival_peak(workload.warmup.arrival, "warmup", schedule))
    known = [peak for peak in peaks if peak is not None]
    return max(known) if known else None
