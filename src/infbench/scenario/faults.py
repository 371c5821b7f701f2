"""Scenario file v1: the ``faults`` section and the targets' ``restart`` policy.

Kept apart from ``model.py`` for length. What the
faults do and what run.json gains from them: docs/reliability.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

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
    action: Literal["kill_worker", "kill_server", "pause", "restart"]
    duration: Annotated[Duration, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _duration_for_pause_only(self) -> Fault:
        if self.action == "pause" and self.duration is None:
            raise ValueError("a pause needs `duration` (how long the server stays stopped)")
        if self.action != "pause" and self.duration is not None:
            raise ValueError(f"`duration` applies to pause only, not to {self.action}")
        return self

    @property
    def end_s(self) -> float:
        return self.at + (self.duration or 0.0)
