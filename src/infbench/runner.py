"""One measured run: recorder, sender, engine and observers wired together, then finalized.

``execute`` is what ``infbench run`` calls once the scenario is loaded, the schedule built and
the target ready. Whatever happens during the load — an interrupt, an exception — the result
directory is finalized with a status, so nothing already recorded is lost.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import psutil

from . import __version__
from .arrivals import Schedule
from .engine import START_LEAD_NS, Engine, EngineHooks, EngineReport, run_async
from .gate import LATENCY_METRICS, RuleResult, check_run, parse_slo
from .recorder import IntervalStats, Recorder
from .requests import RequestFactory
from .results import ResultDir, capture_environment
from .scenario_source import LoadedScenario
from .senders import make_sender
from .senders.base import SenderOptions
from .stats import PhaseInfo, phase_summary, validity
from .target.base import TargetInfo

__all__ = ["Observing", "RunOutcome", "execute"]

_PERCENTILE_ORDER = ("max", "p999", "p99", "p95", "p90", "mean", "p50")


class Observing(Protocol):
    """What the runner needs of an observer (observe.Observer fits)."""

    def start(self) -> None: ...
    def phase_started(self, name: str) -> None: ...
    def phase_ended(self, name: str) -> None: ...
    def latest(self) -> dict[str, float | None]: ...
    def stop(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunOutcome:
    run: dict[str, Any]
    slo: list[RuleResult]
    interrupted: bool


def _goodput_threshold_us(slo: dict[str, Any]) -> int | None:
    """A request counts toward goodput when it succeeded within the SLO's latency bound."""
    rules = {rule.metric: rule for rule in parse_slo(slo)}
    for metric in _PERCENTILE_ORDER:
        if metric in rules and metric in LATENCY_METRICS:
            return int(rules[metric].threshold * 1000)
    return None


def highest_us(timeout_s: float) -> int:
    # A request may wait up to one timeout for a connection and another for its answer.
    return int((3 * timeout_s + 10) * 1e6)


class _Hooks:
    """Engine callbacks: one time-series row per second, live display, observer snapshots."""

    def __init__(
        self,
        results: ResultDir,
        observer: Observing | None,
        display: Callable[[IntervalStats, int, str], None] | None,
    ) -> None:
        self.results, self.observer, self.display = results, observer, display

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
        }
        if self.observer is not None:
            row.update(self.observer.latest())
        self.results.append_timeseries(row)
        if self.display is not None:
            self.display(stats, in_flight, phase)

    def on_phase(self, name: str, edge: str) -> None:
        if self.observer is not None:
            (self.observer.phase_started if edge == "start" else self.observer.phase_ended)(name)


def _summaries(
    schedule: Schedule, recorder: Recorder, report: EngineReport
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    phases, warmup = [], None
    for plan, tally in zip(schedule.phases, recorder.tallies, strict=True):
        start, end = report.phase_windows.get(plan.name, (0.0, 0.0))
        ran = end - start if end > start else max((report.end_ns - report.t0_ns) / 1e9 - start, 0)
        duration = plan.duration_s if plan.name in report.phase_windows else ran
        summary = phase_summary(tally, PhaseInfo(plan.name, plan.process, duration, plan.scheduled))
        if plan.warmup:
            warmup = summary
        elif plan.name in report.phase_windows or tally.completed or tally.dropped:
            phases.append(summary)
    return phases, warmup


def slo_json(results: list[RuleResult]) -> list[dict[str, Any]]:
    return [
        {
            "metric": r.rule.metric,
            "threshold": r.rule.text,
            "phase": r.phase,
            "value": r.value,
            "passed": r.passed,
        }
        for r in results
    ]


def execute(
    loaded: LoadedScenario,
    schedule: Schedule,
    results: ResultDir,
    target: TargetInfo,
    observer: Observing | None = None,
    display: Callable[[IntervalStats, int, str], None] | None = None,
) -> RunOutcome:
    scenario = loaded.scenario
    t0_ns = time.monotonic_ns() + START_LEAD_NS
    start_epoch = time.time() + START_LEAD_NS / 1e9
    recorder = Recorder(
        [plan.name for plan in schedule.phases],
        highest_us(scenario.request.timeout),
        results.path,
        t0_ns,
        start_epoch,
        _goodput_threshold_us(scenario.slo),
    )
    sender = make_sender(
        scenario.client.sender,
        SenderOptions(
            base_url=target.base_url,
            connections=scenario.client.connections,
            timeout_s=scenario.request.timeout,
            max_response_bytes=scenario.request.max_response_bytes,
            http2=scenario.client.http2,
        ),
    )
    requests = RequestFactory.from_scenario(
        scenario.request, loaded.base_dir, scenario.workload.seed
    )
    hooks = _Hooks(results, observer, display)
    engine = Engine(
        schedule,
        sender,
        requests,
        recorder,
        connections=scenario.client.connections,
        timeout_s=scenario.request.timeout,
        t0_ns=t0_ns,
        hooks=EngineHooks(on_interval=hooks.on_interval, on_phase=hooks.on_phase),
    )
    me = psutil.Process()
    cpu_before = me.cpu_times()
    wall_before = time.monotonic()
    if observer is not None:
        observer.start()
    try:
        report: EngineReport = run_async(engine.run())
    finally:
        recorder.close()
        server = observer.stop() if observer is not None else None
    wall = max(time.monotonic() - wall_before, 1e-9)
    cpu_after = me.cpu_times()
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    generator = {
        "cpu_pct": round(100 * cpu_s / wall, 1),
        "busy_cpu_pct": round(100 * max(cpu_s - report.spin_s, 0) / wall, 1),
        "spin_s": round(report.spin_s, 3),
        "rss_mb": round(me.memory_info().rss / 2**20, 1),
        "processes": 1,
    }
    phases, warmup = _summaries(schedule, recorder, report)
    valid, reasons = validity(phases, generator["busy_cpu_pct"])
    slo = check_run(parse_slo(scenario.slo), phases)
    errors_by_kind: dict[str, int] = {}
    for phase in phases:
        for kind, count in phase["errors"].items():
            errors_by_kind[kind] = errors_by_kind.get(kind, 0) + count
        if phase["dropped"]:
            errors_by_kind["dropped"] = errors_by_kind.get("dropped", 0) + phase["dropped"]
    warnings = []
    if report.abandoned:
        warnings.append(
            f"{report.abandoned} requests were still in flight at the end and were abandoned"
        )
    if sum(p["out_of_range"] for p in phases):
        warnings.append("some latencies exceeded the histogram range and were kept at its ceiling")
    run = {
        "format_version": 1,
        "status": "interrupted" if report.interrupted else "complete",
        "valid": valid,
        "invalid_reasons": reasons,
        "infbench_version": __version__,
        "command": sys.argv,
        "scenario": loaded.stored,
        "scenario_path": str(loaded.path),
        "scenario_sha256": loaded.sha256,
        "schedule_sha256": schedule.sha256,
        "seed": scenario.workload.seed,
        "environment": capture_environment(loaded.base_dir),
        "target": target.to_json(),
        "timings": {
            "started_utc": datetime.fromtimestamp(start_epoch, timezone.utc).isoformat(),
            "start_epoch_s": round(start_epoch, 3),
            "duration_s": round((report.end_ns - report.t0_ns) / 1e9, 3),
            "phase_windows_s": {k: list(v) for k, v in report.phase_windows.items()},
        },
        "phases": phases,
        "warmup": warmup,
        "errors_by_kind": errors_by_kind,
        "server": server,
        "generator": generator,
        "slo": slo_json(slo),
        "warnings": warnings,
        "result_dir": str(results.path),
        "pid": os.getpid(),
    }
    results.finalize(run)
    return RunOutcome(run=run, slo=slo, interrupted=report.interrupted)
