"""A fake Kubernetes API server for contract tests: the few endpoints infbench calls.

Its "pods" are real local processes (``tests/fakepod.py``) and a NodePort Service is a
round-robin TCP proxy over the pods its EndpointSlice routes to (one pod per connection, as
kube-proxy does), so a run against it sends real requests to processes that really die. A
controller thread plays the Deployment controller, scheduler and kubelet: it keeps
``replicas`` pods, schedules and starts them, marks them Ready when ``/readyz`` answers, and
ends deleted ones (SIGTERM, SIGKILL after the grace period). Every Service it holds is
annotated ``infbench.dev/simulated: "true"``: figures measured through it are simulated.

    with FakeKube() as kube:
        kube.kubeconfig  # a file to point KUBECONFIG at
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

FAKEPOD = str(Path(__file__).with_name("fakepod.py"))
ROUTE = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>scale))?$"
)
KINDS = {
    "Deployment": "deployments",
    "Service": "services",
    "ConfigMap": "configmaps",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _matches(labels: dict[str, str], selector: str) -> bool:
    pairs = [p.split("=", 1) for p in selector.split(",") if p]
    return all(labels.get(k) == v for k, v in pairs)


class Proxy:
    """A NodePort: each accepted connection goes to the next routable pod, bytes spliced."""

    def __init__(self, kube: FakeKube, service: str) -> None:
        self.kube, self.service = kube, service
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._turn = itertools.count()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            ports = self.kube.routable_ports(self.service)
            if not ports:
                client.close()
                continue
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", ports[next(self._turn) % len(ports)])
                )
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


class FakeKube:
    def __init__(
        self, pod_start_s: float = 0.3, pod_delay_s: float = 0.05, namespace: str = "default"
    ) -> None:
        self.pod_start_s, self.namespace = pod_start_s, namespace
        self.pod_delay_s = pod_delay_s
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, resource, type, obj)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # (resource, name) -> object
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.kill_at: dict[str, float] = {}
        self.proxies: dict[str, Proxy] = {}
        self.requests: list[tuple[str, str]] = []
        self._names = itertools.count(1)
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # --- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> FakeKube:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._control, daemon=True).start()
        self._put(
            "nodes",
            {
                "metadata": {"name": "fake-node"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
            },
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for proc, _ in self.procs.values():
                proc.kill()
                proc.wait()
            for proxy in self.proxies.values():
                proxy.close()

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "users": [{"name": "fake", "user": {}}],
                }
            )
        )
        return path

    # --- the store -----------------------------------------------------------------------

    def _put(self, resource: str, obj: dict[str, Any], kind: str = "MODIFIED") -> dict[str, Any]:
        with self.lock:
            self.version += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.version)
            meta.setdefault("uid", f"uid-{self.version}")
            meta.setdefault("namespace", self.namespace)
            meta.setdefault("creationTimestamp", f"2024-01-01T00:00:{self.version:06d}Z")
            key = (resource, meta["name"])
            if kind == "DELETED":
                self.objects.pop(key, None)
            else:
                kind = kind if key in self.objects or kind != "MODIFIED" else "ADDED"
                self.objects[key] = obj
            self.log.append((self.version, resource, kind, json.loads(json.dumps(obj))))
            self.changed.notify_all()
            return obj

    def items(self, resource: str) -> list[dict[str, Any]]:
        with self.lock:
            return [o for (r, _), o in self.objects.items() if r == resource]

    def names(self, resource: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.items(resource))

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = KINDS[obj["kind"]]
        with self.lock:
            if (resource, obj["metadata"]["name"]) in self.objects:
                raise FileExistsError(obj["metadata"]["name"])
            obj = json.loads(json.dumps(obj))
            if resource == "services" and obj["spec"].get("type") in ("NodePort", "LoadBalancer"):
                proxy = Proxy(self, obj["metadata"]["name"])
                self.proxies[obj["metadata"]["name"]] = proxy
                for port in obj["spec"]["ports"]:
                    port["nodePort"] = proxy.port
            if resource == "services":
                obj["metadata"].setdefault("annotations", {})["infbench.dev/simulated"] = "true"
                self._put(
                    "endpointslices",
                    {
                        "metadata": {
                            "name": obj["metadata"]["name"] + "-fake",
                            "labels": {"kubernetes.io/service-name": obj["metadata"]["name"]},
                        },
                        "endpoints": [],
                    },
                    "ADDED",
                )
            return self._put(resource, obj, "ADDED")

    def delete(self, resource: str, name: str, grace: int | None = None) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((resource, name))
            if obj is None:
                return None
            if resource == "pods":
                return self._terminate(obj, grace)
            if resource == "deployments":
                for pod in self.items("pods"):
                    if pod["metadata"].get("ownerName") == name:
                        self._terminate(pod, 0)
            if resource == "services":
                proxy = self.proxies.pop(name, None)
                if proxy:
                    proxy.close()
                self._put("endpointslices", {"metadata": {"name": name + "-fake"}}, "DELETED")
            self._put(resource, obj, "DELETED")
            return obj

    def _terminate(self, pod: dict[str, Any], grace: int | None) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        grace = 1 if grace is None else grace
        pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        self._put("pods", pod)
        self._sync_slices()
        proc = self.procs.get(name)
        if proc is not None:
            proc[0].terminate() if grace > 0 else proc[0].kill()
        self.kill_at[name] = time.monotonic() + grace
        return pod

    # --- the controller: deployments, scheduler, kubelet ---------------------------------

    def _control(self) -> None:
        while not self._stop.wait(0.05):
            with self.lock:
                for deployment in self.items("deployments"):
                    self._reconcile(deployment)
                for pod in self.items("pods"):
                    self._kubelet(pod)
                self._sync_slices()

    def _reconcile(self, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        mine = [
            p
            for p in self.items("pods")
            if p["metadata"].get("ownerName") == name and not p["metadata"].get("deletionTimestamp")
        ]
        want = int(deployment["spec"].get("replicas", 1))
        for _ in range(want - len(mine)):
            labels = dict(deployment["spec"]["template"]["metadata"]["labels"])
            pod_name = f"{name}-{next(self._names):05d}"
            self._put(
                "pods",
                {
                    "metadata": {"name": pod_name, "labels": labels, "ownerName": name},
                    "spec": {},
                    "status": {"phase": "Pending"},
                },
                "ADDED",
            )
        for pod in sorted(mine, key=lambda p: p["metadata"]["creationTimestamp"])[want:]:
            self._terminate(pod, 1)

    def _kubelet(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            proc = self.procs.get(name)
            if (
                proc is not None
                and proc[0].poll() is None
                and time.monotonic() >= self.kill_at.get(name, 0)
            ):
                proc[0].kill()
            if proc is None or proc[0].poll() is not None:
                if proc is not None:
                    proc[0].wait()
                self.procs.pop(name, None)
                self._put("pods", pod, "DELETED")
            return
        if not pod["spec"].get("nodeName"):
            port = free_port()
            self.procs[name] = (
                subprocess.Popen(
                    [
                        sys.executable,
                        FAKEPOD,
                        str(port),
                        str(self.pod_start_s),
                        str(self.pod_delay_s),
                    ]
                ),
                port,
            )
            pod["spec"]["nodeName"] = "fake-node"
            pod["status"] = {
                "phase": "Running",
                "podIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"restartCount": 0}],
            }
            self._put("pods", pod)
        elif pod["status"]["conditions"][0]["status"] == "False" and self._probe(
            self.procs[name][1]
        ):
            pod["status"]["conditions"][0]["status"] = "True"
            self._put("pods", pod)

    @staticmethod
    def _probe(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _endpoints(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        selector = service["spec"].get("selector") or {}
        out = []
        for pod in sorted(self.items("pods"), key=lambda p: p["metadata"]["name"]):
            if not pod["spec"].get("nodeName") or not all(
                pod["metadata"]["labels"].get(k) == v for k, v in selector.items()
            ):
                continue
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            ready = pod["status"]["conditions"][0]["status"] == "True" and not terminating
            out.append(
                {
                    "addresses": ["127.0.0.1"],
                    "conditions": {"ready": ready, "terminating": terminating},
                    "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"]},
                }
            )
        return out

    def _sync_slices(self) -> None:
        for service in self.items("services"):
            key = ("endpointslices", service["metadata"]["name"] + "-fake")
            current = self.objects.get(key)
            endpoints = self._endpoints(service)
            if current is not None and current.get("endpoints") != endpoints:
                self._put("endpointslices", {**current, "endpoints": endpoints})

    def routable_ports(self, service: str) -> list[int]:
        with self.lock:
            slice_ = self.objects.get(("endpointslices", service + "-fake")) or {}
            names = [
                e["targetRef"]["name"]
                for e in slice_.get("endpoints", [])
                if e["conditions"]["ready"]
            ]
            return [self.procs[n][1] for n in names if n in self.procs]

    # --- HTTP ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        kube = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else {}

            def _route(self) -> tuple[dict[str, str], dict[str, list[str]]] | None:
                url = urlparse(self.path)
                found = ROUTE.match(url.path)
                kube.requests.append((self.command, url.path))
                if found is None:
                    self._send(404, {"kind": "Status", "message": f"no route {url.path}"})
                    return None
                return {k: v or "" for k, v in found.groupdict().items()}, parse_qs(url.query)

            def do_GET(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, query = routed
                res, name = parts["res"], parts["name"]
                if name:
                    obj = kube.objects.get((res, name))
                    if obj is None:
                        return self._send(
                            404, {"kind": "Status", "message": f"{res} {name} not found"}
                        )
                    if parts["sub"]:
                        return self._send(
                            200, {"spec": {"replicas": obj["spec"].get("replicas", 1)}}
                        )
                    return self._send(200, obj)
                selector = query.get("labelSelector", [""])[0]
                if query.get("watch", ["false"])[0] == "true":
                    return self._watch(
                        res,
                        selector,
                        int(query.get("resourceVersion", ["0"])[0] or 0),
                        float(query.get("timeoutSeconds", ["5"])[0]),
                    )
                items = [
                    o
                    for o in kube.items(res)
                    if _matches(o["metadata"].get("labels") or {}, selector)
                ]
                self._send(
                    200,
                    {
                        "kind": "List",
                        "metadata": {"resourceVersion": str(kube.version)},
                        "items": items,
                    },
                )

            def _watch(self, res: str, selector: str, since: int, timeout: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")  # as the API server does
                self.end_headers()
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and not kube._stop.is_set():
                    with kube.lock:
                        new = [e for e in kube.log if e[0] > since and e[1] == res]
                        if not new:
                            kube.changed.wait(0.1)
                            continue
                    for version, _, kind, obj in new:
                        since = version
                        if _matches(obj["metadata"].get("labels") or {}, selector):
                            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                            self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def do_POST(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                try:
                    self._send(201, kube.create(self._body()))
                except FileExistsError as exc:
                    self._send(409, {"kind": "Status", "message": f"{exc} already exists"})

            def do_DELETE(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, query = routed
                body = self._body()
                uid = (body.get("preconditions") or {}).get("uid")
                current = kube.objects.get((parts["res"], parts["name"]))
                if current is not None and uid and current["metadata"]["uid"] != uid:
                    return self._send(409, {"kind": "Status", "message": "uid precondition failed"})
                grace = query.get("gracePeriodSeconds", [body.get("gracePeriodSeconds")])[0]
                obj = kube.delete(
                    parts["res"], parts["name"], None if grace is None else int(grace)
                )
                if obj is None:
                    return self._send(404, {"kind": "Status", "message": "not found"})
                self._send(200, obj)

            def do_PATCH(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, _ = routed
                body = self._body()
                with kube.lock:
                    obj = kube.objects.get((parts["res"], parts["name"]))
                    if obj is None:
                        return self._send(404, {"kind": "Status", "message": "not found"})
                    obj["spec"]["replicas"] = int(body["spec"]["replicas"])
                    kube._put(parts["res"], obj)
                self._send(200, {"spec": {"replicas": obj["spec"]["replicas"]}})

        return Handler
