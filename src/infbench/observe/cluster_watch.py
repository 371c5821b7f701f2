"""What the cluster did during the run: a watch on the target's pods and EndpointSlices.

Each change becomes a :class:`ClusterEvent` stamped with ``time.monotonic_ns()`` when the watch
event arrives — the run's clock, so run.json puts it in seconds from the run's start next to
the faults and the per-second rows. (The API server's own timestamps have one-second
resolution and another machine's clock; arrival is what the load generator experiences.)

Why EndpointSlices and not Endpoints: kube-proxy routes from EndpointSlices (discovery.k8s.io/v1,
GA since 1.21), each endpoint carries ``ready``/``serving``/``terminating`` conditions and a
``targetRef`` naming its pod, and the v1 Endpoints API is deprecated since 1.33. An endpoint
counts as routable while it is ``ready`` — what kube-proxy sends new connections to.

The diffs (:func:`pod_changes`, :func:`endpoint_changes`) are pure, so the timeline is tested
without a cluster; :class:`EventWatch` runs them on a list-then-watch loop per resource.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from infbench.errors import TargetError

Json = dict[str, Any]


class Cluster(Protocol):
    """What the watch needs of the kubernetes target's API client (``targets/kube/api.py``)."""

    namespace: str
    core: Any
    discovery: Any

    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Json: ...

    def watch(
        self, method: Callable[..., Any], since: str, timeout_s: int, **kw: Any
    ) -> Iterator[Json]: ...


__all__ = ["ClusterEvent", "EventWatch", "endpoint_changes", "pod_changes", "ready_pods"]

log = logging.getLogger(__name__)
WATCH_S = 2  # each watch request ends after this, so stopping never waits longer
SERVICE_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class ClusterEvent:
    time_ns: int
    event: str  # pod_created, pod_scheduled, pod_ready, pod_not_ready, pod_terminating,
    # pod_deleted, container_restarted, endpoint_removed, endpoint_added, deletion_requested,
    # scale_requested
    pod: str | None = None
    detail: str | None = None

    def to_json(self, t0_ns: int) -> dict[str, Any]:
        return {
            "time_s": round((self.time_ns - t0_ns) / 1e9, 3),
            "event": self.event,
            "pod": self.pod,
            "detail": self.detail,
        }


def _ready(pod: Json) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _restarts(pod: Json) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def ready_pods(pods: list[Json]) -> list[Json]:
    """Pods Ready and not terminating: what "replicas ready" counts."""
    return [p for p in pods if _ready(p) and not p["metadata"].get("deletionTimestamp")]


def pod_changes(old: Json | None, new: Json | None) -> list[tuple[str, str | None]]:
    """(event, detail) for one pod going from ``old`` to ``new`` (None: absent)."""
    if new is None:
        return [("pod_deleted", None)] if old is not None else []
    before = old or {}
    changes: list[tuple[str, str | None]] = []
    if old is None:
        changes.append(("pod_created", None))
    node = new.get("spec", {}).get("nodeName")
    if node and not before.get("spec", {}).get("nodeName"):
        changes.append(("pod_scheduled", str(node)))
    if _ready(new) != (_ready(before) if old else False):
        changes.append(("pod_ready" if _ready(new) else "pod_not_ready", None))
    if new["metadata"].get("deletionTimestamp") and not before.get("metadata", {}).get(
        "deletionTimestamp"
    ):
        grace = new["metadata"].get("deletionGracePeriodSeconds")
        changes.append(("pod_terminating", None if grace is None else f"grace {grace}s"))
    restarts = _restarts(new) - (_restarts(before) if old else 0)
    if restarts > 0 and old is not None:
        changes.append(("container_restarted", f"restart count {_restarts(new)}"))
    return changes


def routable(slice_: Json) -> set[str]:
    """Pods (or addresses) an EndpointSlice routes new connections to."""
    names = set()
    for endpoint in slice_.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        if conditions.get("ready") is False or conditions.get("terminating"):
            continue
        ref = endpoint.get("targetRef") or {}
        names.add(str(ref.get("name") or ",".join(endpoint.get("addresses") or [])))
    return names


def endpoint_changes(old: set[str], new: set[str]) -> list[tuple[str, str]]:
    """(event, pod) for pods that left or joined the Service's endpoints."""
    return [("endpoint_removed", pod) for pod in sorted(old - new)] + [
        ("endpoint_added", pod) for pod in sorted(new - old)
    ]


class EventWatch:
    """Two watcher threads (pods by the Service's selector, EndpointSlices by its name)."""

    def __init__(self, cluster: Cluster, pod_selector: str, service: str) -> None:
        self.cluster, self.pod_selector, self.service = cluster, pod_selector, service
        self.events: list[ClusterEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pods: dict[str, Json] = {}
        self._slices: dict[str, set[str]] = {}
        self._threads: list[threading.Thread] = []
        self._synced = threading.Barrier(3)

    def add(self, event: str, pod: str | None = None, detail: str | None = None) -> None:
        with self._lock:
            self.events.append(ClusterEvent(time.monotonic_ns(), event, pod, detail))

    def snapshot(self) -> list[ClusterEvent]:
        with self._lock:
            return sorted(self.events, key=lambda e: e.time_ns)

    def start(self) -> None:
        """Begin watching; returns once both resources were listed (their baseline known)."""
        core, discovery = self.cluster.core, self.cluster.discovery
        pods = (core.list_namespaced_pod, {"label_selector": self.pod_selector}, self._on_pod)
        slices = (
            discovery.list_namespaced_endpoint_slice,
            {"label_selector": f"{SERVICE_LABEL}={self.service}"},
            self._on_slice,
        )
        for method, kwargs, handle in (pods, slices):
            thread = threading.Thread(
                target=self._loop,
                args=(method, kwargs, handle),
                daemon=True,
                name="infbench-kube-watch",
            )
            self._threads.append(thread)
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            self._synced.wait(timeout=30)

    def stop(self) -> None:
        self._stop.set()
        self._synced.abort()
        for thread in self._threads:
            thread.join(timeout=WATCH_S + 3)

    # --- the loops -----------------------------------------------------------------------

    def _loop(
        self,
        method: Callable[..., Any],
        kwargs: dict[str, Any],
        handle: Callable[[str, Json], None],
    ) -> None:
        version, first = "", True
        while not self._stop.is_set():
            try:
                if not version:
                    listed = self.cluster.call("list", method, self.cluster.namespace, **kwargs)
                    for item in listed.get("items") or []:
                        handle("LISTED" if first else "MODIFIED", item)
                    version = str(listed.get("metadata", {}).get("resourceVersion") or "0")
                    if first:
                        first = False
                        with contextlib.suppress(threading.BrokenBarrierError):
                            self._synced.wait(timeout=30)
                for change in self._stream(method, kwargs, version):
                    if change.get("type") == "ERROR":  # 410 Gone: list again
                        version = ""
                        break
                    obj = change.get("object") or {}
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    handle(str(change.get("type")), obj)
            except (TargetError, OSError, ValueError) as exc:
                log.debug("kubernetes watch interrupted: %s", exc)
                version = ""
                self._stop.wait(0.5)
            except Exception as exc:  # urllib3 protocol errors: watch again
                log.debug("kubernetes watch failed: %s", exc)
                version = ""
                self._stop.wait(0.5)

    def _stream(
        self, method: Callable[..., Any], kwargs: dict[str, Any], version: str
    ) -> Iterator[Json]:
        yield from self.cluster.watch(method, version, WATCH_S, **kwargs)

    def _on_pod(self, kind: str, pod: Json) -> None:
        name = str(pod.get("metadata", {}).get("name"))
        with self._lock:
            old = self._pods.get(name)
            new = None if kind == "DELETED" else pod
            if kind == "LISTED":  # the baseline: no events for what was there already
                self._pods[name] = pod
                return
            if new is None:
                self._pods.pop(name, None)
            else:
                self._pods[name] = new
        for event, detail in pod_changes(old, new):
            self.add(event, name, detail)

    def _on_slice(self, kind: str, slice_: Json) -> None:
        name = str(slice_.get("metadata", {}).get("name"))
        with self._lock:
            before = set().union(*self._slices.values()) if self._slices else set()
            if kind == "DELETED":
                self._slices.pop(name, None)
            else:
                self._slices[name] = routable(slice_)
            after = set().union(*self._slices.values()) if self._slices else set()
        if kind == "LISTED":
            return
        for event, pod in endpoint_changes(before, after):
            self.add(event, pod)
