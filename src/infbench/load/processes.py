"""Load generation over several processes (``client.processes``), merged without loss.

The schedule is split deterministically — process k of N sends arrivals k, k+N, k+2N, … of each
phase, and closed-loop workers are dealt out the same way — so every process runs the same
engine on its share and the union is exactly the single-process schedule. All processes start
from one instant of the system-wide monotonic clock. Each writes its own interval log and raw
rows; afterwards histograms are added (HDR histograms merge exactly), interval logs merged per
second and tag, and the gzip row streams concatenated. The parent keeps the live display, the
time series and the observer's phase boundaries.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import shutil
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from infbench.errors import InfbenchError
from infbench.load.engine import START_LEAD_NS, EngineHooks, EngineReport, phase_at, sequence_bases
from infbench.load.local import LoadResult, highest_us, run_local
from infbench.recorder.recorder import (
    METRICS,
    IntervalStats,
    PhaseTally,
)
from infbench.results.hlog import merge_interval_logs
from infbench.results.rows import merge_row_files
from infbench.scenario.source import LoadedScenario
from infbench.schedule.arrivals import PhasePlan, Schedule, build_schedule
from infbench.senders import make_sender
from infbench.senders.base import SenderOptions

__all__ = [
    "IntervalMerger",
    "fire_phase_marks",
    "generator_summary",
    "merge_reports",
    "merge_tallies",
    "resolve_processes",
    "run_processes",
    "slice_schedule",
    "tally_to_wire",
]

READY_TIMEOUT_S = 120.0
_COUNTS = (
    "sent",
    "completed",
    "ok",
    "ok_within_slo",
    "dropped",
    "out_of_range",
    "bytes_in",
    "bytes_out",
)


def resolve_processes(setting: int | str) -> int:
    """``auto`` leaves one core to the server under test (which usually shares the machine)."""
    if setting == "auto":
        return max(1, len(os.sched_getaffinity(0)) - 1)
    return int(setting)


def _share(total: int, process: int, processes: int) -> int:
    return len(range(process, total, processes))


def _slice_plan(plan: PhasePlan, process: int, processes: int) -> PhasePlan:
    if plan.closed is not None:
        workers = _share(plan.closed.concurrency, process, processes)
        closed = plan.closed.model_copy(update={"concurrency": workers})
        budget = plan.max_requests
        share = None if budget is None else _share(budget, process, processes)
        return dataclasses.replace(plan, closed=closed, max_requests=share)
    assert plan.offsets is not None
    return dataclasses.replace(plan, offsets=plan.offsets[process::processes])


def slice_schedule(schedule: Schedule, process: int, processes: int) -> Schedule:
    """Process ``process`` of ``processes``: every N-th arrival, every N-th closed-loop worker."""
    phases = tuple(_slice_plan(plan, process, processes) for plan in schedule.phases)
    return dataclasses.replace(schedule, phases=phases)


# --- the child's side -------------------------------------------------------------------------


def tally_to_wire(tally: PhaseTally) -> dict[str, Any]:
    return {
        "counts": {key: getattr(tally, key) for key in _COUNTS},
        "errors": dict(tally.errors),
        "statuses": dict(tally.statuses),
        "histograms": {m: tally.histograms[m].encode() for m in METRICS},
    }


def _child(
    loaded: LoadedScenario,
    process: int,
    processes: int,
    out_dir: Path,
    base_url: str,
    messages: Any,
    go: Any,
    t0: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it forwards SIGTERM
    try:
        full = build_schedule(loaded.scenario.workload, loaded.base_dir)
        share = slice_schedule(full, process, processes)
        # Import the sender's client library now: after the shared start it would make the
        # first arrivals late.
        make_sender(loaded.scenario.client.sender, SenderOptions(base_url=base_url))
        messages.put(("ready", process, None))
        go.wait()

        def on_interval(stats: IntervalStats, in_flight: int, phase: str) -> None:
            messages.put(("interval", process, (stats, in_flight)))

        result = run_local(
            loaded,
            share,
            out_dir,
            base_url,
            EngineHooks(on_interval=on_interval),
            t0_ns=t0.value,
            stride=(process, processes),
            seq_bases=sequence_bases(full),
            rows_header=False,
        )
        wire = {
            "tallies": [tally_to_wire(t) for t in result.tallies],
            "report": dataclasses.asdict(result.report),
            "generator": result.generator,
        }
        messages.put(("done", process, wire))
    except BaseException as exc:  # reported to the parent, which owns the error handling
        messages.put(("error", process, f"{type(exc).__name__}: {exc}"))


# --- the parent's side ------------------------------------------------------------------------


class IntervalMerger:
    """Adds up the processes' per-second figures and hands each complete second on."""

    def __init__(self, processes: int, schedule: Schedule, hooks: EngineHooks) -> None:
        self.processes, self.schedule, self.hooks = processes, schedule, hooks
        self.pending: dict[float, list[tuple[IntervalStats, int]]] = defaultdict(list)

    def add(self, stats: IntervalStats, in_flight: int) -> None:
        parts = self.pending[stats.start_s]
        parts.append((stats, in_flight))
        if len(parts) == self.processes:
            self._emit(self.pending.pop(stats.start_s))

    def flush(self) -> None:
        for start in sorted(self.pending):
            self._emit(self.pending.pop(start))

    def _emit(self, parts: list[tuple[IntervalStats, int]]) -> None:
        first = parts[0][0]
        p99s = [s.latency_p99_ms for s, _ in parts if s.latency_p99_ms is not None]
        p50s = [s.latency_p50_ms for s, _ in parts if s.latency_p50_ms is not None]
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
        )
        in_flight = sum(n for _, n in parts)
        self.hooks.on_interval(merged, in_flight, phase_at(self.schedule, merged.start_s))


def fire_phase_marks(
    schedule: Schedule, t0_ns: int, hooks: EngineHooks, stop: threading.Event
) -> None:
    """Fire the observer's phase boundaries from the parent, on the shared clock."""
    start_ns = t0_ns
    for plan in schedule.phases:
        for edge, at in (("start", start_ns), ("end", start_ns + int(plan.duration_s * 1e9))):
            if stop.wait(max(at - time.monotonic_ns(), 0) / 1e9):
                return
            hooks.on_phase(plan.name, edge)
        start_ns += int(plan.duration_s * 1e9)


def merge_tallies(
    schedule: Schedule, wires: list[dict[str, Any]], ceiling_us: int
) -> list[PhaseTally]:
    tallies = [PhaseTally(plan.name, ceiling_us) for plan in schedule.phases]
    for wire in wires:
        for tally, part in zip(tallies, wire["tallies"], strict=True):
            for key, value in part["counts"].items():
                setattr(tally, key, getattr(tally, key) + value)
            tally.errors.update(part["errors"])
            tally.statuses.update(part["statuses"])
            for metric, encoded in part["histograms"].items():
                tally.histograms[metric].add(HdrHistogram.decode(encoded))
    return tallies


def merge_reports(wires: list[dict[str, Any]], t0_ns: int, start_epoch: float) -> EngineReport:
    reports = [EngineReport(**wire["report"]) for wire in wires]
    windows: dict[str, tuple[float, float]] = {}
    for report in reports:
        for name, window in report.phase_windows.items():
            windows[name] = tuple(window)  # type: ignore[assignment]
    return EngineReport(
        t0_ns=t0_ns,
        start_epoch_s=start_epoch,
        end_ns=max(r.end_ns for r in reports),
        interrupted=any(r.interrupted for r in reports),
        phase_windows=windows,
        spin_s=sum(r.spin_s for r in reports),
        abandoned=sum(r.abandoned for r in reports),
    )


def merge_results(
    out_dir: Path,
    parts: list[Path],
    wires: list[dict[str, Any]],
    schedule: Schedule,
    ceiling_us: int,
    start: tuple[int, float],
) -> tuple[list[PhaseTally], EngineReport]:
    """Every generator's files and tallies merged into ``out_dir``, their folders removed.

    ``parts`` are the generators' folders (interval log, rows), ``wires`` what each reported;
    ``start`` is the common start instant (monotonic ns, epoch s). Shared by generator
    processes and Ray actors, so both merge the same way.
    """
    t0_ns, start_epoch = start
    merge_interval_logs(out_dir / "latency.hlog", [p / "latency.hlog" for p in parts], start_epoch)
    merge_row_files(out_dir / "requests.csv.gz", [p / "requests.csv.gz" for p in parts])
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    return merge_tallies(schedule, wires, ceiling_us), merge_reports(wires, t0_ns, start_epoch)


def generator_summary(wires: list[dict[str, Any]]) -> dict[str, Any]:
    per_process = [wire["generator"] for wire in wires]
    return {
        "cpu_pct": max(g["cpu_pct"] for g in per_process),
        "busy_cpu_pct": max(g["busy_cpu_pct"] for g in per_process),
        "spin_s": round(sum(g["spin_s"] for g in per_process), 3),
        "rss_mb": round(sum(g["rss_mb"] for g in per_process), 1),
        "processes": len(per_process),
        "per_process": per_process,
    }


class _Children:
    """The generator processes: started, released together, waited for, stopped on a signal."""

    def __init__(self, loaded: LoadedScenario, out_dir: Path, base_url: str, n: int) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs threads
        self.messages = ctx.Queue()
        self.go = ctx.Event()
        self.t0 = ctx.Value("q", 0)
        self.parts = [out_dir / f"generator-{k}" for k in range(n)]
        for part in self.parts:
            part.mkdir()
        self.procs = [
            ctx.Process(
                target=_child,
                args=(loaded, k, n, self.parts[k], base_url, self.messages, self.go, self.t0),
                name=f"infbench-generator-{k}",
                daemon=True,
            )
            for k in range(n)
        ]
        for proc in self.procs:
            proc.start()

    def get(self, timeout: float) -> tuple[str, int, Any] | None:
        try:
            return self.messages.get(timeout=timeout)  # type: ignore[no-any-return]
        except queue.Empty:
            return None

    def signal_all(self) -> None:
        for proc in self.procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _wait_ready(children: _Children, n: int) -> None:
    ready, deadline = 0, time.monotonic() + READY_TIMEOUT_S
    while ready < n:
        message = children.get(max(deadline - time.monotonic(), 0.01))
        if message is None:
            raise InfbenchError(f"generator processes did not start within {READY_TIMEOUT_S:.0f} s")
        kind, process, payload = message
        if kind == "error":
            raise InfbenchError(f"generator process {process} failed to start: {payload}")
        ready += kind == "ready"


def _collect(children: _Children, n: int, intervals: IntervalMerger) -> list[dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    while len(done) < n:
        try:
            message = children.get(0.5)
        except KeyboardInterrupt:
            children.signal_all()  # each child finalizes its share, as Ctrl-C does in one process
            continue
        if message is None:
            if not any(p.is_alive() for p in children.procs) and children.messages.empty():
                missing = sorted(set(range(n)) - set(done))
                raise InfbenchError(f"generator processes {missing} died without reporting")
            continue
        kind, process, payload = message
        if kind == "interval":
            intervals.add(*payload)
        elif kind == "done":
            done[process] = payload
        else:
            children.signal_all()
            raise InfbenchError(f"generator process {process} failed: {payload}")
    intervals.flush()
    return [done[k] for k in range(n)]


def run_processes(
    loaded: LoadedScenario,
    schedule: Schedule,
    out_dir: Path,
    base_url: str,
    hooks: EngineHooks,
    processes: int,
) -> LoadResult:
    """The schedule run by ``processes`` processes from one start instant, results merged."""
    children = _Children(loaded, out_dir, base_url, processes)
    marks_stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _wait_ready(children, processes)
        t0_ns = time.monotonic_ns() + START_LEAD_NS
        start_epoch = time.time() + START_LEAD_NS / 1e9
        children.t0.value = t0_ns
        children.go.set()
        marks = threading.Thread(
            target=fire_phase_marks, args=(schedule, t0_ns, hooks, marks_stop), daemon=True
        )
        marks.start()
        wires = _collect(children, processes, IntervalMerger(processes, schedule, hooks))
    finally:
        marks_stop.set()
        signal.signal(signal.SIGTERM, previous)
        children.signal_all()
        children.close()
    ceiling = highest_us(loaded.scenario.request.timeout)
    tallies, report = merge_results(
        out_dir, children.parts, wires, schedule, ceiling, (t0_ns, start_epoch)
    )
    return LoadResult(tallies, report, generator_summary(wires))
