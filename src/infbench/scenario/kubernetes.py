"""Scenario file v1: the ``kubernetes`` target (DESIGN §9, docs/kubernetes.md).

Kept apart from ``model.py`` for length. The cluster is reached with the official
``kubernetes`` client, an optional extra: validating a kubernetes scenario without it fails
here, naming the command that installs it, so a run never gets as far as the cluster to learn
that.
"""

from __future__ import annotations

import importlib.util
from typing import Annotated, Literal

from pydantic import Field, model_validator

from infbench.scenario.common import Model, PositiveDuration
from infbench.scenario.observing import GpuSpec, MetricsSpec

__all__ = ["KUBE_EXTRA", "KubeReadiness", "KubernetesTarget"]

KUBE_EXTRA = "pip install 'infbench[k8s]'"
# RFC 1123 label: what Kubernetes accepts as a namespace or Service name.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class KubeReadiness(Model):
    """The Service URL's readiness probe (the pods' own probes are the cluster's business)."""

    path: str = "/readyz"
    timeout: PositiveDuration = 300.0  # pulling an image and loading a model take minutes
    interval: PositiveDuration = 0.2
    probe_timeout: PositiveDuration = 1.0
    status: Annotated[int, Field(ge=100, le=599)] = 200


class KubernetesTarget(Model):
    """A Service in a cluster, attached to (``service`` or ``selector``) or created from
    ``manifests`` (deleted again at the end, and only what infbench created)."""

    kind: Literal["kubernetes"]
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] = "default"
    service: Annotated[str, Field(pattern=DNS_LABEL)] | None = None
    selector: dict[str, str] = Field(default_factory=dict)  # the Service's labels
    # Plain paths (``../deploy/...`` allowed, unlike LocalPath): a manifest is parsed as
    # Kubernetes objects of a few kinds, never sent anywhere as a request body.
    manifests: list[str] = Field(default_factory=list)
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    port_forward: bool = False
    context: str | None = None  # kubeconfig context; default: the current one
    ready: KubeReadiness = KubeReadiness()
    metrics_path: str | None = "/metrics"
    metrics: MetricsSpec | None = None
    gpu: GpuSpec | None = None  # a DCGM exporter's URL: NVML sees only this machine's GPUs

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesTarget:
        if self.service and self.selector:
            raise ValueError("give `service` (a name) or `selector` (its labels), not both")
        if not (self.service or self.selector or self.manifests):
            raise ValueError(
                "name the Service: `service: NAME`, `selector: {app: NAME}`, or give "
                "`manifests` holding one Service"
            )
        if self.port_forward and self.url:
            raise ValueError("`port_forward: true` makes its own URL: remove `url`")
        if importlib.util.find_spec("kubernetes") is None:
            raise ValueError(
                "`kind: kubernetes` needs the kubernetes client, which is not installed: "
                + KUBE_EXTRA
            )
        return self
