"""The ``url`` target: attach to a server someone else started; infbench never stops it."""

from __future__ import annotations

from infbench.scenario.model import UrlTarget
from infbench.target.base import TargetInfo
from infbench.target.process import wait_until_ready

__all__ = ["UrlHandle"]


class UrlHandle:
    """A running server at a URL. Readiness is probed only when ``target.ready`` is given: an
    attached server is usually up already, and a wrong URL shows at once as connect errors."""

    def __init__(self, spec: UrlTarget) -> None:
        self.spec = spec
        self.base_url = spec.url.rstrip("/")

    def start(self) -> TargetInfo:
        startup_s = None
        if self.spec.ready is not None:
            startup_s = wait_until_ready(self.base_url + self.spec.ready.path, self.spec.ready)
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
