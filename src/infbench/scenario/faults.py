"""Scenario file v1: the ``faults`` section and the targets' ``restart`` policy.

Kept apart from ``model.py`` for length. What the
faults do and what run.json gains from them: docs/reliability.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from infbench.scenario.common import Model
from infbench.units import Duration

__all__ = ["Fault", "RestartPolicy"]

# What an orchestrator does when the server exits on its own while the run is on: `never` lets
# the run measure a dead server, `on-failure` relaunches it and waits for readiness again.
RestartPolicy = Literal["never", "on-failure"]


class Fault(Model):
    """A disruption of the launched server, ``at`` seconds after the first measured phase starts
    (after the warm-up, so changing the warm-up never moves a fault within the phases).

    kill_worker SIGKILLs one worker process, kill_server SIGKILLs the whole process tree, pause
    SIGSTOPs the tree for ``duration`` then SIGCONTs it, restart stops the server gracefully and
    launches it again (whatever ``target.restart`` says).
    """

    at: Duration
    action: Literal["kill_worker", "kill_server", "pause", "restart", "delete_pod", "scale"]
    duration: Annotated[Duration, Field(gt=0)] | None = None
    # kubernetes targets (docs/kubernetes.md): delete_pod deletes `count` pods chosen by `pick`
    # (random: seeded by workload.seed), with `grace_period` seconds (0: at once); scale sets
    # the workload's replicas to `replicas`.
    count: Annotated[int, Field(ge=1, le=1000)] | None = None
    pick: Literal["random", "oldest", "named"] | None = None
    pods: list[str] | None = None
    grace_period: Annotated[int, Field(ge=0)] | None = None
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None

    @model_validator(mode="after")
    def _duration_for_pause_only(self) -> Fault:
        if self.action == "pause" and self.duration is None:
            raise ValueError("a pause needs `duration` (how long the server stays stopped)")
        if self.action != "pause" and self.duration is not None:
            raise ValueError(f"`duration` applies to pause only, not to {self.action}")
        self._check_kube_keys()
        return self

    def _check_kube_keys(self) -> None:
        pod_keys = {"count", "pick", "pods", "grace_period"} & self.model_fields_set
        if self.action != "delete_pod" and pod_keys:
            raise ValueError(f"{', '.join(sorted(pod_keys))}: apply to delete_pod only")
        if self.action != "scale" and self.replicas is not None:
            raise ValueError("`replicas` applies to scale only")
        if self.action == "scale" and self.replicas is None:
            raise ValueError("a scale needs `replicas` (the number to scale to)")
        if self.action == "delete_pod" and (self.pick == "named") != bool(self.pods):
            raise ValueError("`pick: named` goes with `pods: [NAME, ...]` (and only with it)")
        if self.pods and self.count is not None and self.count != len(self.pods):
            raise ValueError("`count` differs from the number of `pods` named")

    @model_serializer(mode="wrap")
    def _without_unused_keys(self, handler: SerializerFunctionWrapHandler) -> Any:
        """The kubernetes keys only where given: run.json's stored scenario stays as written."""
        data = handler(self)
        if isinstance(data, dict):
            for key in ("count", "pick", "pods", "grace_period", "replicas"):
                if data.get(key) is None:
                    data.pop(key, None)
        return data

    @property
    def on_cluster(self) -> bool:
        """Done through the Kubernetes API, not to a process infbench launched."""
        return self.action in ("delete_pod", "scale")

    @property
    def pod_count(self) -> int:
        return len(self.pods) if self.pods else (self.count or 1)

    @property
    def end_s(self) -> float:
        return self.at + (self.duration or 0.0)
