"""Where the load goes: a URL that reaches the Service from this machine.

A LoadBalancer's ingress (its IP or host name and the Service port) is preferred, then a
NodePort on a node's address (ExternalIP, else InternalIP: a K3s node's own address). A
ClusterIP Service cannot be reached from outside the cluster: the error names the three ways
to reach it. ``port_forward: true`` runs ``kubectl port-forward service/NAME :PORT`` as a
launched process (so the pid file stops it after a crash): kubectl then tunnels through the
API server to one pod of the Service, which is why pod faults are refused with it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from infbench.errors import TargetError
from infbench.scenario.kubernetes import KubernetesTarget
from infbench.targets.kube.api import Cluster, Json
from infbench.targets.pidfile import PID_FILE
from infbench.targets.process import LaunchedProcess

__all__ = ["find_url", "service_port", "start_port_forward"]

FORWARDING = re.compile(rb"Forwarding from 127\.0\.0\.1:(\d+)")
FORWARD_WAIT_S = 30.0


def service_port(service: Json) -> Json:
    """The port named ``http``, else the first one."""
    ports = service.get("spec", {}).get("ports") or []
    if not ports:
        raise TargetError(f"Service {service['metadata']['name']} has no ports")
    chosen: Json = next((p for p in ports if p.get("name") == "http"), ports[0])
    return chosen


def _node_address(cluster: Cluster) -> str:
    for wanted in ("ExternalIP", "InternalIP"):
        for node in cluster.nodes().get("items") or []:
            for address in node.get("status", {}).get("addresses") or []:
                if address.get("type") == wanted and address.get("address"):
                    return str(address["address"])
    raise TargetError("no node has an ExternalIP or InternalIP address for the NodePort")


def find_url(cluster: Cluster, service: Json) -> tuple[str, str]:
    """(URL, how it was found) for a NodePort or LoadBalancer Service."""
    name, kind = service["metadata"]["name"], service.get("spec", {}).get("type", "ClusterIP")
    port = service_port(service)
    ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
    host = ingress.get("ip") or ingress.get("hostname")
    if kind == "LoadBalancer" and host:
        return f"http://{_bracket(str(host))}:{port['port']}", "LoadBalancer"
    if kind in ("NodePort", "LoadBalancer") and port.get("nodePort"):
        return f"http://{_bracket(_node_address(cluster))}:{port['nodePort']}", "NodePort"
    raise TargetError(
        f"Service {name} is {kind}: not reachable from outside the cluster. Make it a NodePort "
        "or LoadBalancer, give `target.url` (an ingress), or set `port_forward: true` (one pod, "
        "no pod faults)"
    )


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class PortForward:
    """``kubectl port-forward`` in its own session, stopped like any launched server."""

    def __init__(self, process: LaunchedProcess) -> None:
        self.process = process

    def stop(self) -> None:
        self.process.stop()


def start_port_forward(
    spec: KubernetesTarget, service: Json, run_dir: Path
) -> tuple[PortForward, str]:
    name, port = service["metadata"]["name"], service_port(service)["port"]
    argv = ["kubectl", "port-forward", f"service/{name}", f":{port}", "--namespace", spec.namespace]
    if spec.context:
        argv += ["--context", spec.context]
    log = run_dir / "port-forward.log"
    process = LaunchedProcess(argv, log_path=log, pid_file=run_dir / PID_FILE)
    try:
        process.launch()
    except (OSError, TargetError) as exc:
        raise TargetError(f"port_forward: cannot run kubectl: {exc}") from exc
    deadline = time.monotonic() + FORWARD_WAIT_S
    while time.monotonic() < deadline:
        found = FORWARDING.search(log.read_bytes()) if log.exists() else None
        if found:
            return PortForward(process), f"http://127.0.0.1:{int(found.group(1))}"
        if process.returncode() is not None:
            break
        time.sleep(0.1)
    process.stop()
    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
    raise TargetError(f"port_forward: kubectl port-forward did not start: {tail}")
