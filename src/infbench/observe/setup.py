"""What the Observer samples beside the process tree, from the scenario: the LLM server's
series (``target.metrics``) and the GPUs (``target.gpu``), with the reasons for what it cannot.

Which GPU source: a DCGM exporter when ``target.gpu.dcgm_url`` is given; else NVML, which
reads this machine's GPUs only, so it is tried for a target infbench launches or one on a
loopback address, never for a kubernetes or remote target (their GPUs are elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from infbench.observe.gpu import DcgmSource, GpuProbe, GpuSource, NvmlSource
from infbench.observe.llm_metrics import LlmView
from infbench.observe.probe import Probe
from infbench.scenario.model import Scenario
from infbench.scenario.observing import GpuSpec, MetricsSpec

__all__ = ["ObserverSetup", "observer_setup"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass
class ObserverSetup:
    metrics_url: str | None
    probes: list[Probe] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the run will lack, and why


def observer_setup(scenario: Scenario, base_url: str, metrics_url: str | None) -> ObserverSetup:
    """The metrics URL to scrape (``target.metrics.url`` wins) and the probes to feed."""
    spec: MetricsSpec | None = getattr(scenario.target, "metrics", None)
    url = metrics_url
    if spec is not None:
        url = spec.url or metrics_url or base_url.rstrip("/") + "/metrics"
    setup = ObserverSetup(url)
    if url is not None and (spec is None or spec.preset != "none" or spec.series):
        preset = spec.preset if spec is not None else "auto"
        series = spec.series if spec is not None else {}
        setup.probes.append(LlmView(preset, series, url, explicit=spec is not None))
    source, reason = _gpu_source(scenario, base_url)
    if source is not None:
        setup.probes.append(GpuProbe(source))
    elif reason is not None:
        setup.warnings.append(f"no GPU figures: {reason}")
    return setup


def _gpu_source(scenario: Scenario, base_url: str) -> tuple[GpuSource | None, str | None]:
    """A source, or None with the reason (None too when GPUs were turned off: no reason)."""
    spec: GpuSpec = getattr(scenario.target, "gpu", None) or GpuSpec()
    if spec.dcgm_url is not None:
        return DcgmSource(spec.dcgm_url, spec.labels), None
    if spec.nvml is False:
        return None, None
    kind = scenario.target.kind
    host = urlsplit(base_url).hostname or ""
    if spec.nvml == "auto" and kind == "kubernetes":
        return None, "a kubernetes target's GPUs are on its nodes: give target.gpu.dcgm_url"
    if spec.nvml == "auto" and kind == "url" and host not in LOOPBACK:
        return None, f"NVML reads this machine's GPUs, not {host}'s: give target.gpu.dcgm_url"
    try:
        return NvmlSource(spec.devices), None
    except RuntimeError as exc:
        return None, str(exc)
