"""One measured run: recorder, sender, engine and observers wired together, then finalized.

``execute`` is what ``infbench run`` calls once the scenario is loaded, the schedule built and
the target ready. Whatever happens during the load — an interrupt, an exception — the result
directory is finalized with a status, so nothing already recorded is lost.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from infbench import __version__
from infbench.analysis.cluster_events import explain_faults
from infbench.analysis.cost import instances_for
from infbench.analysis.lag import diagnose_lag
from infbench.analysis.resilience import read_rows, resilience_section
from infbench.analysis.slo import RuleResult, check_run, parse_slo
from infbench.analysis.stats import PhaseInfo, lag_limit_ms, lagging, phase_summary, validity
from infbench.errors import ResultFormatError
from infbench.load.engine import EngineHooks, EngineReport
from infbench.load.job import LoadJob, LoadResult
from infbench.load.local import highest_us, run_local
from infbench.load.processes import resolve_processes, run_processes
from infbench.load.ray.driver import run_ray
from infbench.observe.join import join_observed
from infbench.recorder.recorder import IntervalStats
from infbench.recorder.tally import PhaseTally
from infbench.results.records import (
    GeneratorSummary,
    PhaseSummary,
    Resilience,
    RunRecord,
    ServerSummary,
    SloResult,
    StoredScenario,
    TargetSummary,
    Timings,
)
from infbench.results.rundir import ResultDir, environment_record
from infbench.run.turns import with_turns
from infbench.scenario.secrets import redact_argv, redact_url
from infbench.scenario.source import LoadedScenario
from infbench.schedule.arrivals import Schedule
from infbench.targets.base import EventStream, Supervising, TargetInfo
from infbench.targets.faults import FaultInjector, first_measured_phase

__all__ = ["Observing", "execute", "highest_us", "slo_records", "slo_verdicts"]


class Observing(Protocol):
    """What the runner needs of an observer (observe.Observer fits)."""

    def start(self) -> None: ...
    def phase_started(self, name: str) -> None: ...
    def phase_ended(self, name: str) -> None: ...
    def latest(self) -> dict[str, float | None]: ...
    def stop(self) -> dict[str, Any]: ...


class _Hooks:
    """Engine callbacks: one time-series row per second, live display, observer snapshots."""

    def __init__(
        self,
        results: ResultDir,
        observer: Observing | None,
        display: Callable[[IntervalStats, int, str], None] | None,
        injector: FaultInjector | None = None,
    ) -> None:
        self.results, self.observer, self.display = results, observer, display
        self.injector = injector

    def on_interval(self, stats: IntervalStats, in_flight: int, phase: str) -> None:
        row: dict[str, Any] = {
            "second": int(stats.start_s),
            "phase": phase,
            "offered": stats.offered,
            "sent": stats.sent,
            "completed": stats.completed,
            "errors": stats.errors,
            "in_flight": in_flight,
            "latency_p50_ms": stats.latency_p50_ms,
            "latency_p99_ms": stats.latency_p99_ms,
            "loop_lag_p99_ms": stats.loop_lag_p99_ms,
        }
        if self.observer is not None:
            row.update(self.observer.latest())
        self.results.append_timeseries(row)
        if self.display is not None:
            self.display(stats, in_flight, phase)

    def on_phase(self, name: str, edge: str) -> None:
        if self.injector is not None and edge == "start":
            self.injector.phase_started(name)  # first: a slow scrape must not delay the faults
        if self.observer is not None:
            (self.observer.phase_started if edge == "start" else self.observer.phase_ended)(name)


def _summaries(
    schedule: Schedule, tallies: list[PhaseTally], report: EngineReport
) -> tuple[list[PhaseSummary], PhaseSummary | None]:
    phases, warmup = [], None
    for plan, tally in zip(schedule.phases, tallies, strict=True):
        start, end = report.phase_windows.get(plan.name, (0.0, 0.0))
        ran = end - start if end > start else max((report.end_ns - report.t0_ns) / 1e9 - start, 0)
        duration = plan.duration_s if plan.name in report.phase_windows else ran
        summary = phase_summary(tally, PhaseInfo(plan.name, plan.process, duration, plan.scheduled))
        if plan.warmup:
            warmup = summary
        elif plan.name in report.phase_windows or tally.completed or tally.dropped:
            phases.append(summary)
    return phases, warmup


def slo_verdicts(run: RunRecord) -> list[RuleResult]:
    """The scenario's SLO (as run.json stores it) checked on the run's phases: what the run
    prints under its tables and its exit code follow."""
    return check_run(parse_slo(run.scenario.slo or {}), run.phases)


def slo_records(results: list[RuleResult]) -> tuple[SloResult, ...]:
    return tuple(
        SloResult(
            metric=r.rule.metric,
            threshold=r.rule.text,
            phase=r.phase,
            value=r.value,
            passed=r.passed,
        )
        for r in results
    )


def _resilience(
    results: ResultDir,
    report: EngineReport,
    injector: FaultInjector | None,
    supervisor: Supervising | None,
    events: EventStream | None,
) -> Resilience | None:
    """run.json's ``resilience`` when faults were injected or the server exited during the run;
    a kubernetes target's events also go to events.jsonl and explain each fault."""
    restarts = [r.to_json(report.t0_ns) for r in supervisor.restarts] if supervisor else []
    stamped = _cluster_events(results, report, events)
    if injector is None and not restarts:
        return None
    faults = [event.to_json(report.t0_ns) for event in injector.events] if injector else []
    extra = {"events": stamped} if stamped is not None else {}
    try:
        rows = read_rows(results.file("requests.csv.gz"))
    except ResultFormatError as exc:  # never lose run.json over the analysis
        return Resilience({"faults": faults, "restarts": restarts, "error": str(exc), **extra})
    end_s = (report.end_ns - report.t0_ns) / 1e9
    section = resilience_section(faults, restarts, rows, end_s, report.phase_windows)
    if stamped is not None:
        explain_faults(section["faults"], stamped, end_s)
    return Resilience({**section, **extra})


def _cluster_events(
    results: ResultDir, report: EngineReport, events: EventStream | None
) -> list[dict[str, Any]] | None:
    """The cluster's events on the run's clock, written to events.jsonl; None: not a cluster."""
    if events is None:
        return None
    stamped = [event.to_json(report.t0_ns) for event in events()]
    with results.file("events.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(event) + "\n" for event in stamped)
    return stamped


def _target_summary(target: TargetInfo) -> TargetSummary:
    """The target as run.json records it: its command line and URL with secrets redacted."""
    return TargetSummary(
        kind=target.kind,
        base_url=redact_url(target.base_url),
        command=tuple(redact_argv(target.command)) if target.command is not None else None,
        pids=tuple(target.pids),
        startup_s=target.startup_s,
        metrics_url=target.metrics_url,
        config=target.config,
    )


def _timings(report: EngineReport) -> Timings:
    return Timings(
        started_utc=datetime.fromtimestamp(report.start_epoch_s, timezone.utc).isoformat(),
        start_epoch_s=round(report.start_epoch_s, 3),
        duration_s=round((report.end_ns - report.t0_ns) / 1e9, 3),
        phase_windows_s=dict(report.phase_windows),
    )


def _errors_by_kind(phases: list[PhaseSummary]) -> dict[str, int]:
    """Failed requests of the whole run by kind, dropped arrivals as ``dropped``."""
    errors: dict[str, int] = {}
    for phase in phases:
        for kind, count in phase.errors.items():
            errors[kind] = errors.get(kind, 0) + count
        if phase.dropped:
            errors["dropped"] = errors.get("dropped", 0) + phase.dropped
    return errors


@dataclass(frozen=True)
class _Measured:
    """What the load left behind: the engine's result and the observers' sections."""

    load: LoadResult
    server: ServerSummary | None
    resilience: Resilience | None


def _start_load(job: LoadJob) -> LoadResult:
    """The load on the scenario's engine: this process, generator processes, or Ray actors."""
    client = job.loaded.scenario.client
    processes = resolve_processes(client.processes)
    if client.engine == "ray":
        return run_ray(job, client.ray)
    if processes == 1:
        return run_local(job)
    return run_processes(job, processes)


def _measure(
    job: LoadJob,
    hooks: _Hooks,
    supervisor: Supervising | None,
    events: EventStream | None,
) -> _Measured:
    """Observers and supervisor on, the load, then everything stopped whatever happened."""
    observer, injector, results = hooks.observer, hooks.injector, hooks.results
    if observer is not None:
        observer.start()
    if supervisor is not None:
        supervisor.watch()
    try:
        load = _start_load(job)
    finally:
        if injector is not None:
            injector.stop()
        if supervisor is not None:
            supervisor.unwatch()
        server = observer.stop() if observer is not None else None
    summary = ServerSummary.from_json(server) if server is not None else None
    return _Measured(load, summary, _resilience(results, load.report, injector, supervisor, events))


def execute(
    loaded: LoadedScenario,
    schedule: Schedule,
    results: ResultDir,
    target: TargetInfo,
    observer: Observing | None = None,
    display: Callable[[IntervalStats, int, str], None] | None = None,
    *,
    supervisor: Supervising | None = None,
    events: EventStream | None = None,
    warnings: list[str] | None = None,
) -> RunRecord:
    """Run the load (with the scenario's faults when a supervisor is given), then finalize;
    the run record is what run.json holds."""
    injector = None
    if loaded.scenario.faults and supervisor is not None:
        injector = FaultInjector(loaded.scenario.faults, supervisor, first_measured_phase(schedule))
    hooks = _Hooks(results, observer, display, injector)
    engine_hooks = EngineHooks(on_interval=hooks.on_interval, on_phase=hooks.on_phase)
    job = LoadJob(loaded, schedule, results.path, target.base_url, engine_hooks)
    measured = _measure(job, hooks, supervisor, events)
    run = _run_record(job, results, target, measured, warnings or [])
    results.finalize(run)
    return run


def _run_record(
    job: LoadJob, results: ResultDir, target: TargetInfo, measured: _Measured, warnings: list[str]
) -> RunRecord:
    """run.json of a finished (or interrupted) run, with its SLO verdicts."""
    loaded, schedule = job.loaded, job.schedule
    report = measured.load.report
    generator = measured.load.generator
    warnings = [*warnings, *measured.load.warnings]  # a Ray run's: actors, clocks
    phases, warmup = _summaries(schedule, measured.load.tallies, report)
    phases = with_turns(phases, loaded, results.file("requests.csv.gz"))
    server = measured.server.to_json() if measured.server is not None else None
    cost = loaded.scenario.cost
    joined = join_observed(phases, server, cost, instances_for(loaded.scenario))
    phases, warnings = joined.phases, [*warnings, *joined.warnings]
    valid, reasons = validity(
        phases,
        generator.busy_cpu_pct,
        _lag_advice(results, phases, generator),
        process_loop_lag=generator.loop_lag_p99_ms,
        processes=generator.processes or 1,
    )
    if report.recorder_lost:
        valid, reasons = False, [_recorder_lost(report.recorder_lost), *reasons]
    slo = check_run(parse_slo(loaded.scenario.slo), phases)
    run = RunRecord(
        status=_status(report),
        valid=valid,
        invalid_reasons=tuple(reasons),
        infbench_version=__version__,
        command=tuple(redact_argv(sys.argv)),
        scenario=StoredScenario(loaded.stored),
        scenario_path=str(loaded.path),
        scenario_sha256=loaded.sha256,
        schedule_sha256=schedule.sha256,
        seed=loaded.scenario.workload.seed,
        environment=environment_record(loaded.base_dir),
        target=_target_summary(target),
        timings=_timings(report),
        phases=tuple(phases),
        warmup=warmup,
        errors_by_kind=_errors_by_kind(phases),
        server=ServerSummary.from_json(joined.server) if joined.server is not None else None,
        generator=generator,
        slo=slo_records(slo),
        warnings=tuple(warnings + _run_warnings(loaded, report, phases, measured.resilience)),
        resilience=measured.resilience,
        result_dir=str(results.path),
        pid=os.getpid(),
    )
    return run


def _status(report: EngineReport) -> str:
    if report.recorder_lost:
        return "failed"
    return "interrupted" if report.interrupted else "complete"


def _recorder_lost(why: str) -> str:
    return (
        f"recording failed ({why}): requests.csv.gz and latency.hlog hold what was recorded "
        "until then; the phase figures of run.json are empty"
    )


def _lag_advice(
    results: ResultDir, phases: list[PhaseSummary], generator: GeneratorSummary
) -> dict[str, str]:
    """What made each lagging phase late, from the raw stamps (read only for those)."""
    realtime = generator.priority == "realtime"
    rows = results.path / "requests.csv.gz"
    advice = {}
    for phase in lagging(phases):
        try:
            cause = diagnose_lag(
                rows,
                phase.name,
                lag_limit_ms(phase),
                realtime=realtime,
                sender=generator.sender or "",
            )
        except ResultFormatError:  # never lose run.json over a diagnosis
            continue
        if cause is not None:
            advice[phase.name] = cause.advice
    return advice


def _run_warnings(
    loaded: LoadedScenario,
    report: EngineReport,
    phases: list[PhaseSummary],
    resilience: Resilience | None,
) -> list[str]:
    """What every reader of the run should know: faults not done, TLS off, lost figures."""
    warnings = _resilience_warnings(resilience)
    if loaded.scenario.client.insecure:
        warnings.append("TLS certificate verification was off (client.insecure: true)")
    if report.abandoned:
        warnings.append(
            f"{report.abandoned} requests were still in flight at the end and were abandoned"
        )
    if sum(p.out_of_range for p in phases):
        warnings.append("some latencies exceeded the histogram range and were kept at its ceiling")
    return warnings


def _resilience_warnings(section: Resilience | None) -> list[str]:
    """Faults that could not be done, and server exits, said where every reader looks."""
    if section is None:
        return []
    out = []
    for fault in section.faults:
        if fault.get("error"):
            out.append(f"fault {fault['index']} ({fault['action']}): {fault['error']}")
        elif fault.get("time_s") is None:
            out.append(f"fault {fault['index']} ({fault['action']}) was not done: the run ended")
    for restart in section.restarts:
        if not restart["reason"].startswith("fault"):
            then = "relaunched" if restart["relaunched"] else "not relaunched (restart: never)"
            out.append(f"the server {restart['reason']} at {restart['time_s']:.1f} s; {then}")
    return out
