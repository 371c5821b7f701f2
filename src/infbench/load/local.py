"""Generating the load in this process: recorder, sender and engine for one schedule.

``run_local`` is what a single-process run does, and what each process of a multi-process run
(``processes.py``) does with its share of the schedule.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from infbench.analysis.slo import goodput_latency_ms, parse_slo
from infbench.load.engine import Engine, EngineReport
from infbench.load.job import LoadJob, LoadResult
from infbench.load.loop import run_async
from infbench.recorder.process import RecorderLost, RecorderProcess, RecorderSettings
from infbench.recorder.recorder import Goodput, IntervalStats
from infbench.recorder.stamps import PipeSink, StampBuffer
from infbench.recorder.tally import PhaseTally
from infbench.results.records import GeneratorSummary
from infbench.scenario.model import Scenario
from infbench.schedule.arrivals import phase_at
from infbench.senders import make_sender
from infbench.senders.base import Sender, SenderOptions
from infbench.workload.sources import request_source
from infbench.workload.tokenizer import load_token_counter

__all__ = [
    "finish_recorder",
    "goodput_bounds",
    "highest_us",
    "run_local",
    "start_recorder",
]


def highest_us(timeout_s: float) -> int:
    """Histogram ceiling: a request may wait a timeout for a connection and another to finish."""
    return int((3 * timeout_s + 10) * 1e6)


def goodput_bounds(slo: dict[str, Any]) -> Goodput:
    """A request counts toward goodput when it succeeded within every per-request bound of
    the SLO: its latency bound (the highest percentile given), ttft and tpot."""
    parsed = parse_slo(slo)
    rules = {rule.metric: rule for rule in parsed}
    latency_ms = goodput_latency_ms(parsed)

    def micros(metric: str) -> int | None:
        return int(rules[metric].threshold * 1000) if metric in rules else None

    return Goodput(
        latency_us=int(latency_ms * 1000) if latency_ms is not None else None,
        ttft_us=micros("ttft"),
        tpot_us=micros("tpot"),
    )


def run_local(
    job: LoadJob,
    *,
    t0_ns: int | None = None,
    stride: tuple[int, int] = (0, 1),
    seq_bases: list[int] | None = None,
    sink: Connection | None = None,
    recorder: RecorderProcess | None = None,
) -> LoadResult:
    """Run the job's schedule from ``t0_ns`` (default: once the sender is open) and return
    what it recorded. With ``sink`` (one of several generator processes) the stamps go there
    and the caller's recorder holds the tallies; otherwise this run has a recorder process of
    its own, ``recorder`` if it was started ahead (it is closed here), else one started now."""
    scenario, schedule = job.loaded.scenario, job.schedule
    if sink is None and recorder is None:
        recorder = start_recorder(job)
    connection = sink if sink is not None else recorder.inputs[0]  # type: ignore[union-attr]
    hooks = job.hooks
    if recorder is not None:
        hooks = dataclasses.replace(hooks, on_start=recorder.start)
    engine = Engine(
        schedule,
        _new_sender(scenario, job.base_url, job.loaded.base_dir),
        request_source(
            scenario.request, job.loaded.base_dir, scenario.workload.seed, schedule, seq_bases
        ),
        StampBuffer(PipeSink(connection)),
        connections=scenario.client.connections,
        timeout_s=scenario.request.timeout,
        t0_ns=t0_ns,
        hooks=hooks,
        stride=stride,
        seq_bases=seq_bases,
        priority=scenario.client.priority,
    )
    try:
        if recorder is not None:
            recorder.wait_ready()  # stamps written before it reads would fill the pipe and block
        usage = _ProcessUsage.now()
        report: EngineReport = run_async(engine.run())
        generator = usage.summary(report, engine.sender.name)
        tallies = finish_recorder(recorder, report, job) if recorder else []
    finally:
        if recorder is not None:
            recorder.close()
    return LoadResult(tallies, report, generator)


def start_recorder(job: LoadJob, *, sources: int = 1, rows_header: bool = True) -> RecorderProcess:
    """The recorder process for this job; its seconds reach ``job.hooks.on_interval``."""
    scenario, schedule, hooks = job.loaded.scenario, job.schedule, job.hooks

    def on_interval(stats: IntervalStats) -> None:
        hooks.on_interval(stats, stats.in_flight, phase_at(schedule, stats.start_s))

    settings = RecorderSettings(
        phases=[plan.name for plan in schedule.phases],
        highest_us=highest_us(scenario.request.timeout),
        out_dir=job.out_dir,
        sources=sources,
        goodput=goodput_bounds(scenario.slo),
        rows_header=rows_header,
        streamed=scenario.request.streams,
    )
    return RecorderProcess(settings, on_interval)


def finish_recorder(
    recorder: RecorderProcess, report: EngineReport, job: LoadJob
) -> list[PhaseTally]:
    """The phase tallies once the last stamps are in. A lost recorder leaves empty tallies
    and ``report.recorder_lost`` saying why: the run is then finalized as failed, with the
    rows and interval log the recorder wrote until then."""
    try:
        return recorder.finish(report.end_ns, report.sent_by_phase)
    except RecorderLost as exc:
        report.recorder_lost = report.recorder_lost or str(exc)
        ceiling = highest_us(job.loaded.scenario.request.timeout)
        return [PhaseTally(plan.name, ceiling) for plan in job.schedule.phases]


def _new_sender(scenario: Scenario, base_url: str, base_dir: Path) -> Sender:
    tokenizer, conversations = scenario.request.tokenizer, scenario.request.conversations
    options = SenderOptions(
        base_url=base_url,
        connections=scenario.client.connections,
        timeout_s=scenario.request.timeout,
        max_response_bytes=scenario.request.max_response_bytes,
        http2=scenario.client.http2,
        verify_tls=not scenario.client.insecure,
        preopen=True,
        stream=scenario.request.api if scenario.request.streams else "",
        count_tokens=load_token_counter(base_dir / Path(tokenizer).expanduser())
        if tokenizer
        else None,
        keep_text=conversations is not None and conversations.history == "generated",
    )
    return make_sender(scenario.client.sender, options)


@dataclass(frozen=True)
class _ProcessUsage:
    """This process's CPU time at an instant, to report what the generator used since."""

    process: psutil.Process
    cpu_s: float
    wall_s: float

    @classmethod
    def now(cls) -> _ProcessUsage:
        process = psutil.Process()
        return cls(process, _cpu_s(process), time.monotonic())

    def summary(self, report: EngineReport, sender: str) -> GeneratorSummary:
        """This generator's figures since then: CPU with and without the dispatcher's
        deliberate polling, memory, the sender used and the dispatcher's priority."""
        wall = max(time.monotonic() - self.wall_s, 1e-9)
        cpu_s = _cpu_s(self.process) - self.cpu_s
        return GeneratorSummary(
            cpu_pct=round(100 * cpu_s / wall, 1),
            busy_cpu_pct=round(100 * max(cpu_s - report.spin_s, 0) / wall, 1),
            spin_s=round(report.spin_s, 3),
            rss_mb=round(self.process.memory_info().rss / 2**20, 1),
            processes=1,
            sender=sender,
            priority=report.priority,
            realtime_s=round(report.realtime_s, 3),
            loop_lag_p99_ms=report.loop_lag_p99_ms or None,
        )


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system
