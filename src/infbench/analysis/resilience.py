"""Resilience: what each injected fault did to the run, measured from the raw rows.

For a fault done at F (seconds from the run's start), with B the next fault or the run's end,
and every request placed at its completion time (``done``):

- baseline p50: median latency of the requests that succeeded in [F − 5 s, F);
- first error: the first failed request (any error kind, ``dropped`` included) in [F, B),
  reported as its delay after F;
- error window: from that first error to the last error of the episode, which ends at the
  first gap of more than 1 s between two errors with at least one success inside it (stray
  errors long after the server came back are not the fault's);
- failed requests: failures in [F, end of the error window];
- recovery: from the end of the error window (from F when nothing failed), in 1-second bins, a
  bin is recovered when it has successes, no failure, and a p50 within 10 % of the baseline —
  but at least 1 ms, the event loops' timer granularity, or sub-millisecond servers would never
  "recover" from timer noise. Recovery is the start of the first of two consecutive recovered
  bins (bins without completions neither count nor break the pair), in seconds after F; none
  when that never happens before B.

Latency is done − intended as everywhere (DESIGN §5), so requests that waited out a pause
carry the wait. No I/O except :func:`read_rows`; :func:`resilience_plot_data` turns run.json's
section into what a report draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infbench.results.records import Resilience
from infbench.results.rows import read_row_chunks

__all__ = [
    "FaultMarks",
    "ResiliencePlot",
    "Rows",
    "analyse_fault",
    "read_rows",
    "resilience_plot_data",
    "resilience_section",
]


@dataclass(frozen=True)
class Method:
    """How recovery is judged; run.json's ``resilience.method`` records it."""

    pre_fault_s: float = 5.0  # the baseline is the p50 of the successes this long before
    tolerance: float = 0.10  # recovered: back within this fraction of the baseline ...
    floor_ms: float = 1.0  # ... or this many ms, whichever is more
    hold_bins: int = 2  # for this many one-second bins in a row
    quiet_s: float = 1.0  # errors further apart than this are separate windows
    min_baseline: int = 3  # successes needed before a fault for a baseline p50

    def to_json(self) -> dict[str, float]:
        return {
            "pre_fault_s": self.pre_fault_s,
            "tolerance": self.tolerance,
            "floor_ms": self.floor_ms,
            "hold_s": float(self.hold_bins),
            "quiet_s": self.quiet_s,
        }


METHOD = Method()

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Rows:
    """Completed requests sorted by completion: seconds from the run's start, latency, failed."""

    done_s: FloatArray
    latency_ms: FloatArray
    failed: BoolArray

    @classmethod
    def of(cls, done_s: Any, latency_ms: Any, failed: Any) -> Rows:
        """From array-likes in any order."""
        done = np.asarray(done_s, dtype=np.float64)
        order = np.argsort(done, kind="stable")
        return cls(
            done[order],
            np.asarray(latency_ms, dtype=np.float64)[order],
            np.asarray(failed, dtype=np.bool_)[order],
        )


def read_rows(path: Path) -> Rows:
    """requests.csv.gz as Rows, read in chunks (ResultFormatError names a damaged file)."""
    parts: list[tuple[FloatArray, FloatArray, BoolArray]] = []
    columns = {"intended_ns": "int64", "done_ns": "int64", "error": "str"}
    for chunk in read_row_chunks(path, columns):
        done = chunk["done_ns"].to_numpy()
        latency = (done - chunk["intended_ns"].to_numpy()) / 1e6
        parts.append((done / 1e9, latency, (chunk["error"] != "").to_numpy()))
    if not parts:
        return Rows.of([], [], [])
    return Rows.of(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _error_window(done: FloatArray, failed: BoolArray) -> tuple[float, float, int] | None:
    """(first error, last error of the episode, failures in between) of rows after a fault."""
    errors = done[failed]
    if not len(errors):
        return None
    successes = done[~failed]
    between = np.searchsorted(successes, errors[1:]) - np.searchsorted(
        successes, errors[:-1], side="right"
    )
    breaks = (np.diff(errors) > METHOD.quiet_s) & (between > 0)
    last = int(np.argmax(breaks)) if breaks.any() else len(errors) - 1
    return float(errors[0]), float(errors[last]), last + 1


def _recovery(rows: Rows, start_s: float, end_s: float, threshold_ms: float) -> float | None:
    """Start of the first two consecutive recovered 1-second bins from ``start_s``, or None."""
    streak, first = 0, 0.0
    k = 0
    while start_s + k + 1 <= end_s:
        # Bins are (a, a + 1]: the error that ended the window is not in the first one.
        lo, hi = np.searchsorted(rows.done_s, [start_s + k, start_s + k + 1], side="right")
        k += 1
        if lo == hi:
            continue  # nothing completed: neither recovered nor not
        failed = rows.failed[lo:hi]
        ok = rows.latency_ms[lo:hi][~failed]
        if failed.any() or not len(ok) or float(np.median(ok)) > threshold_ms:
            streak = 0
            continue
        streak += 1
        if streak == 1:
            first = start_s + k - 1
        if streak == METHOD.hold_bins:
            return first
    return None


def analyse_fault(rows: Rows, fault_s: float, boundary_s: float) -> dict[str, Any]:
    """The figures of one fault (see the module docstring), JSON-ready."""
    before = (rows.done_s >= fault_s - METHOD.pre_fault_s) & (rows.done_s < fault_s) & ~rows.failed
    baseline = (
        float(np.median(rows.latency_ms[before])) if before.sum() >= METHOD.min_baseline else None
    )
    lo, hi = np.searchsorted(rows.done_s, [fault_s, boundary_s])
    window = _error_window(rows.done_s[lo:hi], rows.failed[lo:hi])
    result: dict[str, Any] = {
        "baseline_p50_ms": None if baseline is None else round(baseline, 3),
        "threshold_ms": None,
        "first_error_after_s": None,
        "error_window_s": 0.0,
        "error_window": None,
        "failed_requests": 0,
        "recovered": False,
        "recovery_s": None,
    }
    if window is not None:
        first, last, failed = window
        result["first_error_after_s"] = round(first - fault_s, 3)
        result["error_window_s"] = round(last - first, 3)
        result["error_window"] = [round(first, 3), round(last, 3)]
        result["failed_requests"] = failed
    if baseline is None:
        return result
    threshold = baseline + max(METHOD.tolerance * baseline, METHOD.floor_ms)
    result["threshold_ms"] = round(threshold, 3)
    start = window[1] if window is not None else fault_s
    recovered_at = _recovery(rows, start, boundary_s, threshold)
    if recovered_at is not None:
        result["recovered"] = True
        result["recovery_s"] = round(max(recovered_at - fault_s, 0.0), 3)
    return result


def _phase_of(time_s: float, windows: Mapping[str, Sequence[float]]) -> str | None:
    return next((name for name, (a, b) in windows.items() if a <= time_s < b), None)


def resilience_section(
    faults: list[dict[str, Any]],
    restarts: list[dict[str, Any]],
    rows: Rows,
    end_s: float,
    windows: Mapping[str, Sequence[float]],
) -> dict[str, Any]:
    """run.json's ``resilience``: each fault (as done) with its figures, and the restarts."""
    done = sorted((f for f in faults if f.get("time_s") is not None), key=lambda f: f["time_s"])
    analysed = []
    for fault in faults:
        entry = dict(fault)
        time_s = fault.get("time_s")
        if time_s is not None:
            later = [f["time_s"] for f in done if f["time_s"] > time_s]
            boundary = min(later, default=end_s)
            entry["phase"] = _phase_of(time_s, windows)
            entry.update(analyse_fault(rows, time_s, boundary))
        analysed.append(entry)
    return {
        "method": METHOD.to_json(),
        "faults": analysed,
        "restarts": restarts,
    }


# --- what a report draws -------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultMarks:
    """One fault on the per-second latency/error plot (seconds from the run's start)."""

    label: str  # "kill_server at 12.0 s"
    time_s: float
    end_s: float | None  # a pause's resume, a restart's readiness
    error_window: tuple[float, float] | None
    recovered_at_s: float | None
    baseline_p50_ms: float | None
    threshold_ms: float | None  # the recovery band's upper edge


# A kubernetes target's events worth a line on the time plots: when the Service stopped and
# started routing to a pod (what bounds the error window), and container restarts.
PLOTTED_EVENTS = ("endpoint_removed", "endpoint_added", "container_restarted")


@dataclass(frozen=True)
class ResiliencePlot:
    faults: tuple[FaultMarks, ...]
    restarts: tuple[tuple[float, float | None], ...]  # (exit noticed, ready again or None)
    events: tuple[tuple[float, str], ...] = ()  # (seconds from the run's start, event)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def resilience_plot_data(section: Resilience | None) -> ResiliencePlot | None:
    """Markers for the report's time-series plots, from run.json's ``resilience`` alone; None
    without faults.

    Draw a vertical line at each ``time_s``, shade ``error_window``, mark ``recovered_at_s``,
    and a band from ``baseline_p50_ms`` to ``threshold_ms`` on the p50 axis.
    """
    if section is None:
        return None
    marks = []
    for fault in section.faults:
        time_s = _num(fault.get("time_s"))
        if time_s is None:
            continue
        window = fault.get("error_window")
        recovery = _num(fault.get("recovery_s"))
        marks.append(
            FaultMarks(
                label=f"{fault.get('action', 'fault')} at {time_s:.1f} s",
                time_s=time_s,
                end_s=_num(fault.get("end_s")),
                error_window=(float(window[0]), float(window[1]))
                if isinstance(window, list) and len(window) == 2
                else None,
                recovered_at_s=None if recovery is None else time_s + recovery,
                baseline_p50_ms=_num(fault.get("baseline_p50_ms")),
                threshold_ms=_num(fault.get("threshold_ms")),
            )
        )
    restarts = tuple(
        (float(r["time_s"]), _num(r.get("ready_s")))
        for r in section.restarts
        if _num(r.get("time_s")) is not None
    )
    events = tuple(
        (float(e["time_s"]), str(e["event"]))
        for e in _events(section)
        if e.get("event") in PLOTTED_EVENTS and (_num(e.get("time_s")) or -1.0) >= 0
    )
    return ResiliencePlot(tuple(marks), restarts, events)


def _events(section: Resilience) -> list[Mapping[str, Any]]:
    raw = section.data.get("events")
    return [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []
