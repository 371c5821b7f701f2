"""The few Kubernetes API calls infbench makes, through the official client, as plain JSON.

The ``kubernetes`` package is an optional extra, imported here only when a kubernetes target
starts (so ``infbench --help`` and every other target never pay for it). Responses are read
raw (``_preload_content=False``) and parsed as JSON: infbench reads a handful of fields, and
the client's model classes would reject the partial objects a test's fake API server returns.
Every API error becomes a TargetError (exit 3) naming the call. The client's untyped calls are
ignored as ``no-untyped-call, unused-ignore``: without the extra, mypy sees Any there instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from infbench.errors import TargetError
from infbench.scenario.kubernetes import KUBE_EXTRA

__all__ = ["Cluster", "Json", "NotFound", "labels_selector"]

Json = dict[str, Any]
REQUEST_TIMEOUT_S = 30.0


class NotFound(TargetError):
    """The object does not exist (HTTP 404)."""


def labels_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _api_client(context: str | None) -> Any:
    """KUBECONFIG (or ~/.kube/config) when there is one, else the pod's in-cluster account."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise TargetError(f"the kubernetes client is not installed: {KUBE_EXTRA}") from exc
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    try:
        if Path(kubeconfig.split(os.pathsep)[0]).is_file():
            return config.new_client_from_config(  # type: ignore[no-untyped-call, unused-ignore]
                config_file=kubeconfig, context=context
            )
        configuration = client.Configuration()
        config.load_incluster_config(  # type: ignore[no-untyped-call, unused-ignore]
            client_configuration=configuration
        )
        return client.ApiClient(configuration)
    except config.ConfigException as exc:
        raise TargetError(
            f"no cluster access: {exc} (set KUBECONFIG, or run inside a pod with a service account)"
        ) from exc


class Cluster:
    """One namespace of one cluster."""

    def __init__(self, namespace: str, context: str | None = None) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.api_client = _api_client(context)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.discovery = client.DiscoveryV1Api(self.api_client)
        self.autoscaling = client.AutoscalingV2Api(self.api_client)
        self.host = str(self.api_client.configuration.host)

    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
        """``method`` of the client, raw JSON back; ApiException -> TargetError naming ``what``."""
        from kubernetes.client.exceptions import ApiException

        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_S)
        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            error = NotFound if exc.status == 404 else TargetError
            raise error(f"kubernetes: {what}: {exc.status} {_reason(exc)}") from exc
        except OSError as exc:  # urllib3's errors are OSErrors: refused, reset, timed out
            message = f"kubernetes: {what}: API server {self.host} unreachable: {exc}"
            raise TargetError(message) from exc
        data = response.data
        return json.loads(data) if data else {}

    def watch(
        self, method: Callable[..., Any], since: str, timeout_s: int, **kw: Any
    ) -> Iterator[Json]:
        """Watch events after resourceVersion ``since`` until the server ends the stream."""
        from kubernetes.watch.watch import iter_resp_lines

        response = method(
            self.namespace,
            watch=True,
            resource_version=since,
            timeout_seconds=timeout_s,
            _preload_content=False,
            _request_timeout=(REQUEST_TIMEOUT_S, timeout_s + REQUEST_TIMEOUT_S),
            **kw,
        )
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call, unused-ignore]
                if line:
                    yield json.loads(line)
        finally:
            response.release_conn()

    # --- the calls ---------------------------------------------------------------------------

    def pods(self, selector: str) -> Json:
        return self.call(
            "list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector
        )

    def delete_pod(self, name: str, grace_s: int | None) -> Json:
        kwargs = {} if grace_s is None else {"grace_period_seconds": grace_s}
        return self.call(
            f"delete pod {name}", self.core.delete_namespaced_pod, name, self.namespace, **kwargs
        )

    def service(self, name: str) -> Json:
        return self.call(
            f"read service {name}", self.core.read_namespaced_service, name, self.namespace
        )

    def services(self, selector: str) -> Json:
        return self.call(
            "list services",
            self.core.list_namespaced_service,
            self.namespace,
            label_selector=selector,
        )

    def nodes(self) -> Json:
        return self.call("list nodes", self.core.list_node)

    def deployments(self) -> Json:
        return self.call("list deployments", self.apps.list_namespaced_deployment, self.namespace)

    def scale(self, deployment: str, replicas: int) -> Json:
        return self.call(
            f"scale deployment {deployment}",
            self.apps.patch_namespaced_deployment_scale,
            deployment,
            self.namespace,
            {"spec": {"replicas": replicas}},
        )


def _reason(exc: Any) -> str:
    """The API server's message (its Status object) rather than the raw HTTP reason."""
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
