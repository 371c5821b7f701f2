"""Fault injection: the scenario's ``faults`` done to the launched server during the run.

Each fault's ``at`` counts from the start of the first measured phase (after the warm-up), so
lengthening the warm-up never moves a fault within the phases; what run.json records is the
instant it was actually done, in seconds from the run's start (the axis of timeseries.csv and
``timings.phase_windows_s``). The injector is a thread the runner arms before the load and
that anchors itself when the engine reports the first measured phase's start, so it works the
same with one load-generating process or many. Faults are done one after another in time
order; a restart blocks the next fault until the server is ready again. A kubernetes target's
faults (delete_pod, scale) go to its :class:`ClusterActions` instead, through the API server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from infbench.errors import ScenarioError, UsageError
from infbench.scenario.faults import Fault
from infbench.scenario.model import Scenario
from infbench.schedule.arrivals import Schedule
from infbench.targets.base import ClusterActions, Supervising
from infbench.targets.supervise import Supervisor

__all__ = [
    "FaultEvent",
    "FaultInjector",
    "check_faults",
    "first_measured_phase",
]


@dataclass
class FaultEvent:
    """One fault as it happened; times are ``time.monotonic_ns()``."""

    index: int
    action: str
    at_s: float
    duration_s: float | None
    time_ns: int | None = None
    end_ns: int | None = None  # pause: resumed; restart: ready again
    pids: list[int] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)  # kubernetes: the pods deleted
    error: str | None = None

    def to_json(self, t0_ns: int) -> dict[str, Any]:
        def seconds(ns: int | None) -> float | None:
            return None if ns is None else round((ns - t0_ns) / 1e9, 3)

        return {
            "index": self.index,
            "action": self.action,
            "at_s": self.at_s,
            "duration_s": self.duration_s,
            "time_s": seconds(self.time_ns),
            "end_s": seconds(self.end_ns),
            "pids": self.pids,
            "pods": self.pods,
            "error": self.error,
        }


def first_measured_phase(schedule: Schedule) -> str:
    return next(plan.name for plan in schedule.phases if not plan.warmup)


def check_faults(scenario: Scenario, schedule: Schedule, url_override: str | None) -> None:
    """What the scenario alone could not check: ``--url`` and trace phases' real lengths."""
    if not scenario.faults:
        return
    if url_override is not None:
        raise UsageError(
            "--url attaches to a server infbench did not launch, so it cannot inject the "
            "scenario's faults",
            hint="drop --url to let infbench launch the target, or remove `faults`",
        )
    measured = sum(plan.duration_s for plan in schedule.phases if not plan.warmup)
    for index, fault in enumerate(scenario.faults):
        if fault.end_s >= measured:
            raise ScenarioError(
                f"faults[{index}]: ends at {fault.end_s:g}s, past the measured phases' "
                f"{measured:g}s (`at` counts from the start of the first measured phase)"
            )


class FaultInjector:
    """Arm before the load; ``phase_started`` (an engine hook) fires the timeline."""

    def __init__(self, faults: Sequence[Fault], supervisor: Supervising, first_phase: str) -> None:
        self.supervisor = supervisor
        self.first_phase = first_phase
        self.events = [FaultEvent(i, f.action, f.at, f.duration) for i, f in enumerate(faults)]
        self._faults = list(faults)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def phase_started(self, name: str) -> None:
        if name != self.first_phase or self._thread is not None or self._stop.is_set():
            return
        anchor_ns = time.monotonic_ns()
        self._thread = threading.Thread(
            target=self._run, args=(anchor_ns,), name="infbench-faults", daemon=True
        )
        self._thread.start()

    def _timeline(self, anchor_ns: int) -> list[tuple[int, int, str]]:
        steps = []
        for index, fault in enumerate(self._faults):
            steps.append((anchor_ns + int(fault.at * 1e9), index, "do"))
            if fault.action == "pause":
                steps.append((anchor_ns + int(fault.end_s * 1e9), index, "resume"))
        return sorted(steps)

    def _run(self, anchor_ns: int) -> None:
        for due_ns, index, step in self._timeline(anchor_ns):
            if self._stop.wait(max(due_ns - time.monotonic_ns(), 0) / 1e9):
                return
            event = self.events[index]
            if step == "resume":
                self.supervisor.resume()
                event.end_ns = time.monotonic_ns()
            else:
                self._do(event)

    def _do(self, event: FaultEvent) -> None:
        supervisor = self.supervisor
        event.time_ns = time.monotonic_ns()
        if not isinstance(supervisor, Supervisor):
            self._do_on_cluster(event, supervisor)
            return
        if event.action == "kill_worker":
            event.pids = supervisor.kill_worker()
            if not event.pids:
                event.error = "no worker process to kill (the server has no child processes)"
        elif event.action == "kill_server":
            event.pids = supervisor.kill_server()
        elif event.action == "pause":
            event.pids = supervisor.pause()
        else:
            record = supervisor.restart()
            event.end_ns, event.error = record.ready_ns, record.error
        if event.action != "restart" and not event.pids and event.error is None:
            event.error = "the server was not running"

    def _do_on_cluster(self, event: FaultEvent, cluster: ClusterActions) -> None:
        fault = self._faults[event.index]
        if fault.action == "delete_pod":
            event.pods, event.error = cluster.delete_pods(fault, event.index)
        elif fault.replicas is not None:
            event.error = cluster.scale(fault.replicas)

    def stop(self) -> None:
        """End the timeline (the load is over or interrupted); a paused server is resumed."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            # A restart may be waiting for readiness; the target stop that follows ends it.
            thread.join(timeout=2)
        self.supervisor.resume()
