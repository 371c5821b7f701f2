"""Load generation over several processes (``client.processes``), recorded as one.

The schedule is split deterministically — process k of N sends arrivals k, k+N, k+2N, … of each
phase, and closed-loop workers are dealt out the same way — so every process runs the same
engine on its share and the union is exactly the single-process schedule. All processes start
from one instant of the system-wide monotonic clock and hand their stamps to one recorder
process, so the histograms, interval log and rows are those of one run: nothing is merged
afterwards but the engines' reports (end time, phase windows, polling time). The parent keeps
the live display, the time series and the observer's phase boundaries.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from infbench.errors import InfbenchError
from infbench.load.engine import START_LEAD_NS, EngineHooks, EngineReport
from infbench.load.local import LoadResult, finish_recorder, highest_us, run_local, start_recorder
from infbench.recorder.process import RecorderProcess
from infbench.scenario.source import LoadedScenario
from infbench.schedule.arrivals import PhasePlan, Schedule, build_schedule, sequence_bases
from infbench.senders import make_sender
from infbench.senders.base import SenderOptions

__all__ = [
    "fire_phase_marks",
    "generator_summary",
    "merge_reports",
    "resolve_processes",
    "run_processes",
    "slice_schedule",
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


def _child(
    loaded: LoadedScenario,
    process: int,
    processes: int,
    out_dir: Path,
    base_url: str,
    messages: Any,
    go: Any,
    t0: Any,
    sink: Connection,
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
        result = run_local(
            loaded,
            share,
            out_dir,
            base_url,
            EngineHooks(),
            t0_ns=t0.value,
            stride=(process, processes),
            seq_bases=sequence_bases(full),
            sink=sink,
        )
        wire = {
            "report": dataclasses.asdict(result.report),
            "generator": result.generator,
        }
        messages.put(("done", process, wire))
    except BaseException as exc:  # reported to the parent, which owns the error handling
        messages.put(("error", process, f"{type(exc).__name__}: {exc}"))


# --- the parent's side ------------------------------------------------------------------------


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
        sent_by_phase=[sum(n) for n in zip(*(r.sent_by_phase for r in reports), strict=True)],
        recorder_lost=next((r.recorder_lost for r in reports if r.recorder_lost), None),
        priority=min(r.priority for r in reports),  # "normal" if any process had to do without
        realtime_s=sum(r.realtime_s for r in reports),
    )


def generator_summary(wires: list[dict[str, Any]]) -> dict[str, Any]:
    per_process = [wire["generator"] for wire in wires]
    return {
        "cpu_pct": max(g["cpu_pct"] for g in per_process),
        "busy_cpu_pct": max(g["busy_cpu_pct"] for g in per_process),
        "spin_s": round(sum(g["spin_s"] for g in per_process), 3),
        "rss_mb": round(sum(g["rss_mb"] for g in per_process), 1),
        "processes": len(per_process),
        "sender": per_process[0].get("sender"),
        "priority": min(g.get("priority", "normal") for g in per_process),
        "realtime_s": round(sum(g.get("realtime_s", 0.0) for g in per_process), 3),
        "per_process": per_process,
    }


class _Children:
    """The generator processes: started, released together, waited for, stopped on a signal."""

    def __init__(
        self, loaded: LoadedScenario, out_dir: Path, base_url: str, sinks: list[Connection]
    ) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs threads
        self.messages = ctx.Queue()
        self.go = ctx.Event()
        self.t0 = ctx.Value("q", 0)
        n = len(sinks)
        self.procs = [
            ctx.Process(
                target=_child,
                args=(loaded, k, n, out_dir, base_url, self.messages, self.go, self.t0, sinks[k]),
                name=f"infbench-generator-{k}",
                daemon=True,
            )
            for k in range(n)
        ]
        for proc, sink in zip(self.procs, sinks, strict=True):
            proc.start()
            sink.close()  # the child has its own copy; the pipe ends when the child does

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


def _collect(children: _Children, n: int) -> list[dict[str, Any]]:
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
        if kind == "done":
            done[process] = payload
        else:
            children.signal_all()
            raise InfbenchError(f"generator process {process} failed: {payload}")
    return [done[k] for k in range(n)]


def run_processes(
    loaded: LoadedScenario,
    schedule: Schedule,
    out_dir: Path,
    base_url: str,
    hooks: EngineHooks,
    processes: int,
) -> LoadResult:
    """The schedule run by ``processes`` processes from one start instant, into one recorder."""
    recorder = start_recorder(loaded.scenario, schedule, out_dir, hooks, sources=processes)
    try:
        wires, t0_ns, start_epoch = _run_children(
            loaded, schedule, out_dir, base_url, hooks, recorder
        )
        report = merge_reports(wires, t0_ns, start_epoch)
        ceiling = highest_us(loaded.scenario.request.timeout)
        tallies = finish_recorder(recorder, report, schedule, ceiling)
    finally:
        recorder.close()
    return LoadResult(tallies, report, generator_summary(wires))


def _run_children(
    loaded: LoadedScenario,
    schedule: Schedule,
    out_dir: Path,
    base_url: str,
    hooks: EngineHooks,
    recorder: RecorderProcess,
) -> tuple[list[dict[str, Any]], int, float]:
    """Start the generators, release them at one instant, collect what each reports."""
    children = _Children(loaded, out_dir, base_url, recorder.inputs)
    marks_stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _wait_ready(children, len(children.procs))
        recorder.wait_ready()  # before the start instant: it must read from the first batch
        t0_ns = time.monotonic_ns() + START_LEAD_NS
        start_epoch = time.time() + START_LEAD_NS / 1e9
        recorder.start(t0_ns, start_epoch)
        children.t0.value = t0_ns
        children.go.set()
        marks = threading.Thread(
            target=fire_phase_marks, args=(schedule, t0_ns, hooks, marks_stop), daemon=True
        )
        marks.start()
        return _collect(children, len(children.procs)), t0_ns, start_epoch
    finally:
        marks_stop.set()
        signal.signal(signal.SIGTERM, previous)
        children.signal_all()
        children.close()
