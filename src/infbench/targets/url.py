"""The ``url`` target: attach to a server someone else started; infbench never stops it."""

from __future__ import annotations

from infbench.scenario.model import Target, UrlTarget
from infbench.targets.base import TargetInfo
from infbench.targets.process import wait_until_ready
from infbench.targets.ready import REFUSED_GRACE_S, WaitProgress, wait_until_accepting

__all__ = ["UrlHandle", "refusal_grace"]


def refusal_grace(scenario_target: Target) -> float | None:
    """Seconds of refused connections after which attaching gives up; None: ``ready.timeout``.

    :data:`REFUSED_GRACE_S`, unless the scenario's target is a ``url`` target that sets
    ``ready.timeout`` itself: whoever wrote that expects to wait for the server, say one started
    alongside infbench. A launched target's timeout is about its boot, so ``--url`` over it keeps
    the grace.
    """
    ready = scenario_target.ready
    if isinstance(scenario_target, UrlTarget) and ready and "timeout" in ready.model_fields_set:
        return None
    return REFUSED_GRACE_S


class UrlHandle:
    """A running server at a URL.

    With ``target.ready`` the readiness probe is waited for; without it infbench only checks
    that the port accepts connections. Either way connections refused for ``refused_grace_s``
    (None: until ``ready.timeout``) fail the start: nothing listens there.
    """

    supervisor: None = None  # not ours to fault or restart
    events: None = None

    def __init__(
        self,
        spec: UrlTarget,
        *,
        refused_grace_s: float | None = REFUSED_GRACE_S,
        progress: WaitProgress | None = None,
    ) -> None:
        self.spec = spec
        self.base_url = spec.url.rstrip("/")
        self.refused_grace_s, self.progress = refused_grace_s, progress

    def start(self) -> TargetInfo:
        startup_s = None
        ready = self.spec.ready
        if ready is not None:
            startup_s = wait_until_ready(
                self.base_url + ready.path,
                ready,
                progress=self.progress,
                refused_grace_s=self.refused_grace_s,
            )
        else:
            grace = REFUSED_GRACE_S if self.refused_grace_s is None else self.refused_grace_s
            wait_until_accepting(self.base_url, grace_s=grace, progress=self.progress)
        metrics = self.spec.metrics_path
        return TargetInfo(
            kind="url",
            base_url=self.base_url,
            startup_s=startup_s,
            metrics_url=self.base_url + metrics if metrics else None,
        )

    def process_pids(self) -> list[int]:
        return []  # not ours: CPU and RSS of an attached server are not sampled

    def alive(self) -> bool:
        return True  # unknown without a probe; failed requests will show it

    def stop(self) -> None:
        return None
