"""Build the TargetHandle a scenario's ``target`` describes."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from infbench.errors import UsageError
from infbench.scenario.model import (
    BentomlTarget,
    CommandTarget,
    KubernetesTarget,
    Readiness,
    Target,
    UrlTarget,
)
from infbench.targets.base import TargetHandle
from infbench.targets.bentoml import BentomlHandle
from infbench.targets.command import CommandHandle
from infbench.targets.ready import WaitProgress
from infbench.targets.url import UrlHandle, refusal_grace

__all__ = ["open_target"]


def open_target(
    spec: Target,
    base_dir: Path,
    log_path: Path,
    url_override: str | None = None,
    pid_file: Path | None = None,
    progress: WaitProgress | None = None,
    seed: int = 0,
) -> TargetHandle:
    """A handle for ``spec``; nothing starts until ``start()``.

    ``url_override`` (``infbench run --url``) attaches to that URL instead of launching, keeping
    the target's readiness probe and metrics path: the same scenario then measures a server
    started by hand, for example on another host. ``pid_file`` lets a later infbench stop a
    launched server that outlived a SIGKILLed infbench (``targets/pidfile.py``). ``progress``
    hears how each readiness wait goes (``targets/ready.py``). ``seed`` picks the pods a
    kubernetes target's ``delete_pod: random`` deletes.
    """
    if isinstance(spec, KubernetesTarget):
        from infbench.targets.kube.handle import KubernetesHandle  # the optional client, lazily

        if url_override is not None:
            spec = spec.model_copy(update={"url": url_override.rstrip("/"), "port_forward": False})
        return KubernetesHandle(spec, base_dir, log_path.parent, seed, progress=progress)
    grace = refusal_grace(spec)
    if url_override is not None:
        return UrlHandle(_as_url(spec, url_override), refused_grace_s=grace, progress=progress)
    if isinstance(spec, BentomlTarget):
        return BentomlHandle(spec, base_dir, log_path, pid_file, progress=progress)
    if isinstance(spec, CommandTarget):
        return CommandHandle(spec, base_dir, log_path, pid_file, progress=progress)
    return UrlHandle(spec, refused_grace_s=grace, progress=progress)


def _as_url(spec: Target, url: str) -> UrlTarget:
    try:
        if isinstance(spec, UrlTarget):
            return spec.model_copy(update={"url": UrlTarget(kind="url", url=url).url})
        ready = Readiness.model_validate(spec.ready.model_dump())
        return UrlTarget(kind="url", url=url, ready=ready, metrics_path=spec.metrics_path)
    except ValidationError as exc:
        raise UsageError(f"--url: expected http://host:port or https://..., got {url!r}") from exc
