"""The Target seam: start (or attach), wait until ready, report pids, stop without orphans.

A target also says what the runner may act on while the load runs, as members rather than
attributes the runner probes for: its ``supervisor`` (a launched server's, or a cluster's,
that faults are done to and restarts come from) and its ``events`` (a cluster's event stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from infbench.scenario.faults import Fault
from infbench.targets.supervise import Supervisor

__all__ = [
    "ClusterActions",
    "EventStream",
    "Stamped",
    "Supervising",
    "TargetHandle",
    "TargetInfo",
]


@dataclass
class TargetInfo:
    """The started target; run.json records it under ``target`` (results.records.TargetSummary)."""

    kind: str
    base_url: str
    command: list[str] | None = None
    pids: list[int] = field(default_factory=list)
    startup_s: float | None = None
    metrics_url: str | None = None
    config: dict[str, object] = field(default_factory=dict)


class Stamped(Protocol):
    """An instant of the run (a restart, a cluster event), written relative to its start."""

    def to_json(self, t0_ns: int) -> dict[str, Any]: ...


EventStream: TypeAlias = Callable[[], Sequence[Stamped]]
"""The events seen so far, oldest first; called once the load is over."""


class ClusterActions(Protocol):
    """A cluster's supervisor: its faults go through the API server (targets/kube/handle.py);
    watching is the cluster's own (its restarts are pods the cluster replaces)."""

    @property
    def restarts(self) -> Sequence[Stamped]: ...

    def watch(self) -> None: ...
    def unwatch(self) -> None: ...
    def resume(self) -> None: ...
    def delete_pods(self, fault: Fault, index: int) -> tuple[list[str], str | None]: ...
    def scale(self, replicas: int) -> str | None: ...


Supervising: TypeAlias = Supervisor | ClusterActions
"""A launched server's supervisor (targets/supervise.py) or a cluster's."""


class TargetHandle(Protocol):
    """A server under test. ``start`` returns once the server is ready (or raises TargetError,
    exit 3); ``stop`` is idempotent and leaves no process it launched alive."""

    def start(self) -> TargetInfo: ...

    def process_pids(self) -> list[int]:
        """Pids of the whole server process tree now (empty for an attached URL)."""
        ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...

    @property
    def supervisor(self) -> Supervising | None:
        """Faults are done to it and restarts come from it; None: an attached server."""
        ...

    @property
    def events(self) -> EventStream | None:
        """Read after ``start``: the cluster's events; None: the target has none."""
        ...
