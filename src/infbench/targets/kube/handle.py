"""The ``kubernetes`` target: a Service's pods, Ready in the number asked, reached by URL.

start: create the manifests (if any), find the Service and the Deployment behind it, scale to
``replicas`` and wait until that many pods are Ready, start the event watch, find the URL
(given, a NodePort on a node's address, a LoadBalancer's ingress, or a ``kubectl
port-forward``) and wait for the readiness probe through it. stop: end the watch and the
port-forward, delete what was created. Faults and events go through :class:`ClusterFaults`,
the ``supervisor`` of this target (``targets/faults.py`` drives it).

A Service annotated ``infbench.dev/simulated: "true"`` (the tests' fake API server does it) is
recorded as ``simulated`` in run.json's target: such figures come from local processes, never
from a cluster.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from infbench.errors import TargetError
from infbench.observe.cluster_watch import ClusterEvent, EventWatch, ready_pods
from infbench.scenario.faults import Fault
from infbench.scenario.kubernetes import KubernetesTarget
from infbench.scenario.model import Readiness
from infbench.targets.base import EventStream, TargetInfo
from infbench.targets.kube.access import find_url, start_port_forward
from infbench.targets.kube.api import Cluster, Json, labels_selector
from infbench.targets.kube.manifests import KUBE_FILE, Applier, load_manifests
from infbench.targets.kube.pick import pick_pods
from infbench.targets.process import register_closer, wait_until_ready
from infbench.targets.ready import WaitProgress

__all__ = ["ClusterFaults", "KubernetesHandle"]

SIMULATED = "infbench.dev/simulated"
POLL_S = 0.25


class ClusterFaults:
    """Faults through the API server, and the watch that explains them."""

    def __init__(self, cluster: Cluster, selector: str, deployment: str | None, seed: int) -> None:
        self.cluster, self.selector, self.deployment = cluster, selector, deployment
        self.seed = seed
        self.watch_events: EventWatch | None = None
        self.restarts: list[Any] = []  # the cluster restarts pods; its events say when

    def watch(self) -> None: ...
    def unwatch(self) -> None: ...
    def resume(self) -> None: ...

    def _note(self, event: str, pod: str | None = None, detail: str | None = None) -> None:
        if self.watch_events is not None:
            self.watch_events.add(event, pod, detail)

    def delete_pods(self, fault: Fault, index: int) -> tuple[list[str], str | None]:
        pods = self.cluster.pods(self.selector).get("items") or []
        rng = random.Random(f"{self.seed}:{index}")
        names, problem = pick_pods(pods, fault, rng)
        for name in names:
            self._note(
                "deletion_requested",
                name,
                f"grace {fault.grace_period}s" if fault.grace_period is not None else None,
            )
            try:
                self.cluster.delete_pod(name, fault.grace_period)
            except TargetError as exc:
                problem = exc.message
        return names, problem

    def scale(self, replicas: int) -> str | None:
        if self.deployment is None:
            return "no Deployment selects the Service's pods: nothing to scale"
        self._note("scale_requested", None, f"{self.deployment} to {replicas}")
        try:
            self.cluster.scale(self.deployment, replicas)
        except TargetError as exc:
            return exc.message
        return None

    def events(self) -> list[ClusterEvent]:
        return self.watch_events.snapshot() if self.watch_events is not None else []


class KubernetesHandle:
    def __init__(
        self,
        spec: KubernetesTarget,
        base_dir: Path,
        run_dir: Path,
        seed: int,
        progress: WaitProgress | None = None,
    ) -> None:
        self.spec, self.base_dir, self.run_dir, self.seed = spec, base_dir, run_dir, seed
        self.progress = progress
        self.supervisor: ClusterFaults | None = None
        self._applier: Applier | None = None
        self._forward: Any = None
        self._lock = threading.Lock()

    def start(self) -> TargetInfo:
        spec = self.spec
        docs = load_manifests(spec.manifests, self.base_dir, spec.namespace)
        began = time.monotonic()
        cluster = Cluster(spec.namespace, spec.context)
        register_closer(self, self.stop)
        if docs:
            self._applier = Applier(cluster, self.run_dir / KUBE_FILE, spec.context)
            self._applier.create_all(docs)
        service = self._service(cluster, docs)
        name = str(service["metadata"]["name"])
        selector = labels_selector(service.get("spec", {}).get("selector") or {})
        if not selector:
            raise TargetError(f"Service {name} has no selector: infbench cannot find its pods")
        deployment = self._deployment(cluster, service)
        supervisor = ClusterFaults(cluster, selector, deployment, self.seed)
        self.supervisor = supervisor
        if spec.replicas is not None:
            if deployment is None:
                raise TargetError(
                    f"target.replicas: no Deployment in {spec.namespace} selects the pods of "
                    f"Service {name}"
                )
            cluster.scale(deployment, spec.replicas)
        pods = self._wait_pods(cluster, selector, deployment)
        supervisor.watch_events = EventWatch(cluster, selector, name)
        supervisor.watch_events.start()
        url, source = self._url(cluster, service)
        ready = Readiness.model_validate(spec.ready.model_dump())
        wait_until_ready(url + ready.path, ready, progress=self.progress)
        simulated = (service["metadata"].get("annotations") or {}).get(SIMULATED) == "true"
        return TargetInfo(
            kind="kubernetes",
            base_url=url,
            startup_s=round(time.monotonic() - began, 3),
            metrics_url=url + spec.metrics_path if spec.metrics_path else None,
            config={
                "namespace": spec.namespace,
                "service": name,
                "deployment": deployment,
                "replicas": len(pods),
                "pods": sorted(str(p["metadata"]["name"]) for p in pods),
                "url_source": source,
                "created": [f"{o.kind}/{o.name}" for o in self._applier.objects]
                if self._applier
                else [],
                "api_server": cluster.host,
                "simulated": simulated,
            },
        )

    def _service(self, cluster: Cluster, docs: list[Json]) -> Json:
        spec = self.spec
        if spec.service:
            return cluster.service(spec.service)
        if spec.selector:
            found: list[Json] = cluster.services(labels_selector(spec.selector)).get("items") or []
            where = f"labels {labels_selector(spec.selector)}"
        else:
            names = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
            found = [cluster.service(n) for n in names]
            where = "target.manifests"
        if len(found) != 1:
            raise TargetError(
                f"target: {len(found)} Services match {where}; name one with `service`"
            )
        return found[0]

    def _deployment(self, cluster: Cluster, service: Json) -> str | None:
        """The Deployment whose pods the Service selects (what `replicas` and scale act on)."""
        wanted = service.get("spec", {}).get("selector") or {}
        for item in cluster.deployments().get("items") or []:
            labels = (
                item.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
            )
            if all(labels.get(k) == v for k, v in wanted.items()):
                return str(item["metadata"]["name"])
        return None

    def _wait_pods(self, cluster: Cluster, selector: str, deployment: str | None) -> list[Json]:
        want = self.spec.replicas
        deadline = time.monotonic() + self.spec.ready.timeout
        while True:
            pods = cluster.pods(selector).get("items") or []
            ready = ready_pods(pods)
            target = (
                want
                if want is not None
                else max(1, len([p for p in pods if not p["metadata"].get("deletionTimestamp")]))
            )
            if len(ready) >= target and (want is None or len(pods) == want):
                return ready
            if time.monotonic() > deadline:
                raise TargetError(
                    f"target: {len(ready)} of {target} pod(s) Ready after "
                    f"{self.spec.ready.timeout:g}s "
                    f"(selector {selector}); `kubectl describe pods -l {selector}` says why"
                )
            time.sleep(POLL_S)

    def _url(self, cluster: Cluster, service: Json) -> tuple[str, str]:
        if self.spec.url:
            return self.spec.url.rstrip("/"), "given"
        if self.spec.port_forward:
            self._forward, url = start_port_forward(self.spec, service, self.run_dir)
            return url, "port-forward"
        return find_url(cluster, service)

    @property
    def events(self) -> EventStream | None:
        """The watch's events; None until ``start`` has found the pods."""
        return self.supervisor.events if self.supervisor is not None else None

    def process_pids(self) -> list[int]:
        return []  # the pods' processes are the nodes', not this machine's

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        """Idempotent: ends the watch and port-forward, deletes what infbench created."""
        with self._lock:
            supervisor, self.supervisor = self.supervisor, None
            applier, self._applier = self._applier, None
            forward, self._forward = self._forward, None
        if supervisor is not None and supervisor.watch_events is not None:
            supervisor.watch_events.stop()
        if forward is not None:
            forward.stop()
        if applier is not None:
            for problem in applier.delete_all():
                raise TargetError(f"could not delete what infbench created: {problem}")
        register_closer(self, None)
