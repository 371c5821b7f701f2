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
from typing import Any

from infbench.errors import InfbenchError
from infbench.load.engine import START_LEAD_NS, EngineHooks, EngineReport
from infbench.load.job import LoadJob, LoadResult, merge_generators
from infbench.load.local import finish_recorder, run_local, start_recorder
from infbench.recorder.process import RecorderProcess
from infbench.results.records import GeneratorSummary
from infbench.schedule.arrivals import PhasePlan, Schedule, sequence_bases
from infbench.senders import make_sender
from infbench.senders.base import SenderOptions

__all__ = [
    "fire_phase_marks",
    "merge_reports",
    "resolve_processes",
    "run_processes",
    "share_of",
    "slice_schedule",
]

READY_TIMEOUT_S = 120.0


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


def share_of(job: LoadJob, process: int, processes: int) -> LoadJob:
    """The job of generator ``process`` of ``processes``: its slice of the schedule."""
    return dataclasses.replace(job, schedule=slice_schedule(job.schedule, process, processes))


# --- the child's side -------------------------------------------------------------------------


def _child(
    job: LoadJob,
    stride: tuple[int, int],
    seq_bases: list[int],
    channels: tuple[Any, Any, Any],
    sink: Connection,
) -> None:
    """Generator process ``stride[0]`` of ``stride[1]``: ``job`` holds its share of the
    schedule; ``channels`` are the messages queue, the start event and the start instant."""
    messages, go, t0 = channels
    process = stride[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it forwards SIGTERM
    try:
        # Import the sender's client library now: after the shared start it would make the
        # first arrivals late.
        make_sender(job.loaded.scenario.client.sender, SenderOptions(base_url=job.base_url))
        messages.put(("ready", process, None))
        go.wait()
        result = run_local(job, t0_ns=t0.value, stride=stride, seq_bases=seq_bases, sink=sink)
        messages.put(("done", process, (result.report, result.generator)))
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


def merge_reports(reports: list[EngineReport], t0_ns: int, start_epoch: float) -> EngineReport:
    """The generators' reports as one, on the common start."""
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


class _Children:
    """The generator processes: started, released together, waited for, stopped on a signal."""

    def __init__(self, job: LoadJob, sinks: list[Connection]) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs threads
        self.messages = ctx.Queue()
        self.go = ctx.Event()
        self.t0 = ctx.Value("q", 0)
        n, bases = len(sinks), sequence_bases(job.schedule)
        channels = (self.messages, self.go, self.t0)
        self.procs = [
            ctx.Process(
                target=_child,
                args=(share_of(job, k, n), (k, n), bases, channels, sinks[k]),
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


def _collect(children: _Children, n: int) -> list[tuple[EngineReport, GeneratorSummary]]:
    done: dict[int, tuple[EngineReport, GeneratorSummary]] = {}
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


def run_processes(job: LoadJob, processes: int) -> LoadResult:
    """The schedule run by ``processes`` processes from one start instant, into one recorder."""
    recorder = start_recorder(job, sources=processes)
    try:
        parts, t0_ns, start_epoch = _run_children(job, recorder)
        report = merge_reports([r for r, _ in parts], t0_ns, start_epoch)
        tallies = finish_recorder(recorder, report, job)
    finally:
        recorder.close()
    return LoadResult(tallies, report, merge_generators([g for _, g in parts]))


def _run_children(
    job: LoadJob, recorder: RecorderProcess
) -> tuple[list[tuple[EngineReport, GeneratorSummary]], int, float]:
    """Start the generators, release them at one instant, collect what each reports."""
    children = _Children(job, recorder.inputs)
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
            target=fire_phase_marks, args=(job.schedule, t0_ns, job.hooks, marks_stop), daemon=True
        )
        marks.start()
        return _collect(children, len(children.procs)), t0_ns, start_epoch
    finally:
        marks_stop.set()
        signal.signal(signal.SIGTERM, previous)
        children.signal_all()
        children.close()
