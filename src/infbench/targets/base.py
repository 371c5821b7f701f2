"""The Target seam: start (or attach), wait until ready, report pids, stop without orphans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Supervising", "TargetHandle", "TargetInfo"]


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


class TargetHandle(Protocol):
    """A server under test. ``start`` returns once the server is ready (or raises TargetError,
    exit 3); ``stop`` is idempotent and leaves no process it launched alive."""

    def start(self) -> TargetInfo: ...

    def process_pids(self) -> list[int]:
        """Pids of the whole server process tree now (empty for an attached URL)."""
        ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class Supervising(Protocol):
    """What the runner needs of a target's supervisor while the load runs: a launched server's
    (target/supervise.Supervisor) or a cluster's (target/kube/handle.ClusterFaults)."""

    @property
    def restarts(self) -> list[Any]:  # each with ``to_json(t0_ns)``
        ...

    def watch(self) -> None: ...
    def unwatch(self) -> None: ...
    def resume(self) -> None: ...
