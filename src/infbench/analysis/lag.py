"""Why the generator fell behind: the cause of a send lag, read from the raw stamps.

A run whose send lag is too high is invalid (DESIGN §5), but "lower the rate" is the wrong
advice when the rate was never the problem. Three causes leave different marks in the stamps
of the late requests (lag over the limit):

- **stall**: for longer than the limit nothing at all was sent while the request was overdue,
  so the generator's process was not running (preempted by other work on the machine, a
  pause); the requests caught up after it count as stalled too;
- **burst serialisation**: the generator was sending all along, and the late request was due
  within ``BURST_NS`` of the one before it, and much closer than the phase's arrivals are on
  average (``BURST_SHARE`` of the mean gap): arrivals due at one instant left one after another.
  At 20,000/s a constant rate's arrivals are 50 µs apart, which is a rate, not a burst;
- **saturation**: the generator was sending all along, spread over time: it could not keep up
  with the rate (its CPU says so too).

The late requests are classified one by one and the most common cause names the phase's.
Requests are read in chunks of raw rows (completion order), so a neighbour in another chunk
can be missed; that only ever makes a request look stalled, and a whole phase rarely.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from infbench.results.rows import read_row_chunks

__all__ = ["BURST_NS", "LagCause", "advice", "diagnose_lag"]

BURST_NS = 100_000  # arrivals due within 0.1 ms of each other came as one burst,
BURST_SHARE = 0.25  # when that is also under a quarter of the phase's mean gap
_MOST_LATE = 20_000  # late requests examined per chunk of rows
FloatArray = npt.NDArray[np.float64]
Cause = Literal["stall", "burst", "saturation"]
_ADVICE: dict[Cause, str] = {
    "stall": (
        "the generator's process did not run for up to {worst:.1f} ms while requests were due "
        "(other work on this machine took its core, or a pause): give the generator a core of "
        "its own (stop other work, pin the server elsewhere with taskset), or spread the load "
        "over more client.processes"
    ),
    "burst": (
        "arrivals due at the same instant left one after another (burst serialisation): "
        "{fast}more client.processes"
    ),
    "saturation": (
        "the generator was busy sending the whole time and could not keep up with the rate: "
        "lower the rate, {fast}more client.processes"
    ),
}
_FAST = "use client.sender: fast (it writes a burst at socket speed), or "


_PRIORITY_HINT = (
    ", or let its dispatcher take real-time priority (client.priority: auto, which needs root, "
    "CAP_SYS_NICE or `ulimit -r 1`)"
)


@dataclass(frozen=True)
class LagCause:
    cause: Cause
    late: int  # requests over the limit
    worst_ms: float  # the longest wait of a stalled request, or the largest lag
    realtime: bool = True  # whether the dispatcher had real-time priority (load/priority.py)
    sender: str = ""  # the sender used (run.json generator.sender): advice never repeats it

    @property
    def advice(self) -> str:
        return advice(self)


def advice(cause: LagCause) -> str:
    fast = "" if cause.sender == "fast" else _FAST
    text = _ADVICE[cause.cause].format(worst=cause.worst_ms, fast=fast)
    return text + _PRIORITY_HINT if cause.cause == "stall" and not cause.realtime else text


def diagnose_lag(
    rows_path: Path, phase: str, limit_ms: float, *, realtime: bool = True, sender: str = ""
) -> LagCause | None:
    """The cause of the phase's late requests; None when none was late (or no rows).
    ``realtime``: whether the dispatcher ran at real-time priority (else the advice says how);
    ``sender``: the sender used (the advice suggests ``fast`` only when it was another)."""
    counts: Counter[Cause] = Counter()
    worst_ns = {"stall": 0.0, "burst": 0.0, "saturation": 0.0}
    columns = {"phase": "str", "intended_ns": "float64", "sent_ns": "float64"}
    for chunk in read_row_chunks(rows_path, columns):
        rows = chunk[(chunk["phase"] == phase) & (chunk["sent_ns"].notna())]
        intended = rows["intended_ns"].to_numpy()
        sent = rows["sent_ns"].to_numpy()
        for cause, lags in _classify(intended, sent, limit_ms * 1e6).items():
            counts[cause] += lags.size
            if lags.size:
                worst_ns[cause] = max(worst_ns[cause], float(lags.max()))
    if not counts:
        return None
    cause = max(counts, key=lambda c: counts[c])
    return LagCause(cause, sum(counts.values()), worst_ns[cause] / 1e6, realtime, sender)


def _classify(intended: FloatArray, sent: FloatArray, limit_ns: float) -> dict[Cause, FloatArray]:
    """For each cause, the figure of each late request it explains: the longest silence of
    the generator for a stall, the lag otherwise."""
    lag = sent - intended
    late = np.flatnonzero(lag > limit_ns)
    if late.size == 0:
        return {}
    if late.size > _MOST_LATE:  # evenly spaced: the cause of a phase, not of each request
        late = late[np.linspace(0, late.size - 1, _MOST_LATE).astype(np.int64)]
    sends = np.sort(sent)
    by_due = np.argsort(intended, kind="stable")
    gap_before = np.empty_like(intended)
    gap_before[by_due] = np.diff(intended[by_due], prepend=-np.inf)
    silence = np.array([_longest_silence(sends, intended[i], sent[i]) for i in late])
    stalled = silence > limit_ns
    mean_gap = (intended.max() - intended.min()) / max(intended.size - 1, 1)
    burst = ~stalled & (gap_before[late] < min(BURST_NS, BURST_SHARE * mean_gap))
    return {
        "stall": silence[stalled],
        "burst": lag[late][burst],
        "saturation": lag[late][~stalled & ~burst],
    }


def _longest_silence(sends: FloatArray, due: float, sent: float) -> float:
    """The longest time without any send between a request's due time and its own send."""
    first = int(np.searchsorted(sends, due, side="right"))
    last = int(np.searchsorted(sends, sent, side="left"))  # its own send is not inside
    if first >= last:
        return sent - due
    inner = sends[first:last]
    gaps = np.diff(inner)
    return float(max(inner[0] - due, sent - inner[-1], gaps.max() if gaps.size else 0.0))
