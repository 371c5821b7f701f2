"""What stays merged after the fact: the Ray actors' own recordings.

Actors may run on other hosts, where no pipe reaches the driver's recorder; shipping every
stamp through Ray's object store would cost more than the few files each actor's own recorder
writes. So each actor records its share locally (``load.local.run_local``, rows without a
header), returns its files and tallies, and the driver merges them here: HDR histograms add
exactly, interval logs merge per second and tag, and gzip row files concatenate.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from infbench.load.engine import EngineHooks, EngineReport
from infbench.load.processes import merge_reports
from infbench.recorder.recorder import IntervalStats
from infbench.recorder.tally import PhaseTally
from infbench.results.hlog import merge_interval_logs
from infbench.results.rows import merge_row_files
from infbench.schedule.arrivals import Schedule, phase_at

__all__ = ["hand_on_second", "merge_results", "merge_tallies"]


def hand_on_second(
    parts: list[tuple[IntervalStats, int]], schedule: Schedule, hooks: EngineHooks
) -> None:
    """One second's figures (and in-flight counts) of the actors that reported it, added up."""
    first = parts[0][0]
    p99s = [s.latency_p99_ms for s, _ in parts if s.latency_p99_ms is not None]
    p50s = [s.latency_p50_ms for s, _ in parts if s.latency_p50_ms is not None]
    lags = [s.loop_lag_p99_ms for s, _ in parts if s.loop_lag_p99_ms is not None]
    merged = IntervalStats(
        start_s=first.start_s,
        offered=sum(s.offered for s, _ in parts),
        sent=sum(s.sent for s, _ in parts),
        completed=sum(s.completed for s, _ in parts),
        errors=sum(s.errors for s, _ in parts),
        # Exact per-second percentiles are in the merged interval log; the live view and
        # time series show the median of the processes' medians and the worst p99.
        latency_p50_ms=sorted(p50s)[len(p50s) // 2] if p50s else None,
        latency_p99_ms=max(p99s) if p99s else None,
        loop_lag_p99_ms=max(lags) if lags else None,  # the worst process's loop
    )
    in_flight = sum(n for _, n in parts)
    hooks.on_interval(merged, in_flight, phase_at(schedule, merged.start_s))


def merge_tallies(wires: list[dict[str, Any]]) -> list[PhaseTally]:
    """Each phase's tally of every actor, merged (they ran the same seconds side by side)."""
    by_actor = [[PhaseTally.from_wire(part) for part in wire["tallies"]] for wire in wires]
    return [PhaseTally.merged(parts) for parts in zip(*by_actor, strict=True)]


def merge_results(
    out_dir: Path,
    parts: list[Path],
    wires: list[dict[str, Any]],
    start: tuple[int, float],
) -> tuple[list[PhaseTally], EngineReport]:
    """Every actor's files and tallies merged into ``out_dir``, their folders removed.

    ``parts`` are the actors' folders (interval log, rows), ``wires`` what each reported;
    ``start`` is the common start instant (monotonic ns, epoch s).
    """
    t0_ns, start_epoch = start
    merge_interval_logs(out_dir / "latency.hlog", [p / "latency.hlog" for p in parts], start_epoch)
    tallies = merge_tallies(wires)
    streamed = any(tally.streamed for tally in tallies)
    rows = [p / "requests.csv.gz" for p in parts]
    merge_row_files(out_dir / "requests.csv.gz", rows, streamed=streamed)
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    return tallies, merge_reports([wire["report"] for wire in wires], t0_ns, start_epoch)
