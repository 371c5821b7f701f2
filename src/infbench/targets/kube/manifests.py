"""The scenario's ``manifests``: created at start, and exactly those objects deleted at the end.

infbench *creates* (it does not ``apply``): an object that already exists is an error, since it
is not infbench's to delete afterwards. Each object is annotated with the result directory and
recorded in ``target.k8s.json`` beside ``target.pid`` — the intent before the create call, its
uid after — so an infbench killed mid-run leaves a file that ``infbench cleanup`` (and the next
run) turns into deletions (``kube/cleanup.py``). A deletion carries the recorded uid as a
precondition: an object of the same name created since by someone else is never deleted.

Format (JSON, version 1)::

    {"version": 1, "owner": {"pid": 41, "create_time": 1700000000.12}, "context": null,
     "objects": [{"kind": "Deployment", "namespace": "default", "name": "sentiment",
                  "uid": "6f1c..."}, ...]}
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from infbench.errors import ScenarioError, TargetError
from infbench.targets.kube.api import Cluster, Json, NotFound
from infbench.targets.pidfile import ProcessId, process_id, read_record

__all__ = [
    "KINDS",
    "KUBE_FILE",
    "AppliedObject",
    "Applier",
    "delete_object",
    "load_manifests",
    "read_kube_file",
]

KUBE_FILE = "target.k8s.json"
ANNOTATION = "infbench.dev/result-dir"
VERSION = 1
GONE_WAIT_S = 60.0

# kind -> (client attribute, method suffix): create_namespaced_<suffix>, delete_..., read_...
KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps", "deployment"),
    "Service": ("core", "service"),
    "ConfigMap": ("core", "config_map"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontal_pod_autoscaler"),
}


@dataclass
class AppliedObject:
    kind: str
    namespace: str
    name: str
    uid: str | None = None  # None: the create call was sent, its answer not seen

    def to_json(self) -> Json:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "uid": self.uid}


def load_manifests(paths: list[str], base_dir: Path, namespace: str) -> list[Json]:
    """Every document of every file, checked: a supported kind, a name, the target's namespace."""
    objects = []
    for path in paths:
        file = (base_dir / Path(path).expanduser()).resolve()
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise ScenarioError(f"target.manifests: cannot read {path}: {exc}") from exc
        for number, doc in enumerate(d for d in docs if d is not None):
            objects.append(
                _checked(doc, f"target.manifests: {path} document {number + 1}", namespace)
            )
    return objects


def _checked(doc: Any, where: str, namespace: str) -> Json:
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        raise ScenarioError(f"{where}: not a Kubernetes object (no metadata)")
    kind, meta = doc.get("kind"), doc["metadata"]
    if kind not in KINDS:
        raise ScenarioError(
            f"{where}: kind {kind!r} is not supported; supported: {', '.join(KINDS)}"
        )
    if not meta.get("name"):
        raise ScenarioError(f"{where}: metadata.name is missing")
    if meta.get("namespace", namespace) != namespace:
        raise ScenarioError(
            f"{where}: metadata.namespace {meta['namespace']!r} differs from "
            f"target.namespace {namespace!r}"
        )
    return {**doc, "metadata": {**meta, "namespace": namespace}}


def _method(cluster: Cluster, verb: str, kind: str) -> Callable[..., Any]:
    api, suffix = KINDS[kind]
    return getattr(getattr(cluster, api), f"{verb}_namespaced_{suffix}")  # type: ignore[no-any-return]


class Applier:
    """Creates the manifests in order and deletes them in reverse, keeping the record file."""

    def __init__(self, cluster: Cluster, record: Path, context: str | None) -> None:
        self.cluster, self.record, self.context = cluster, record, context
        self.objects: list[AppliedObject] = []

    def create_all(self, docs: list[Json]) -> None:
        for doc in docs:
            meta = doc["metadata"]
            annotations = {**(meta.get("annotations") or {}), ANNOTATION: str(self.record.parent)}
            body = {**doc, "metadata": {**meta, "annotations": annotations}}
            applied = AppliedObject(doc["kind"], self.cluster.namespace, meta["name"])
            self.objects.append(applied)
            self._write()
            try:
                created = self.cluster.call(
                    f"create {applied.kind} {applied.name}",
                    _method(self.cluster, "create", applied.kind),
                    self.cluster.namespace,
                    body,
                )
            except TargetError:
                self.objects.pop()  # refused (exists, invalid): nothing of ours to delete
                self._write()
                raise
            applied.uid = created.get("metadata", {}).get("uid") or ""
            self._write()

    def delete_all(self) -> list[str]:
        """Delete what was created, newest first, and wait until it is gone; problems back."""
        problems = []
        for applied in reversed(self.objects):
            problem = delete_object(self.cluster, applied, str(self.record.parent))
            if problem:
                problems.append(problem)
        self.objects = []
        with contextlib.suppress(OSError):
            self.record.unlink()
        return problems

    def _write(self) -> None:
        owner = ProcessId.of(psutil.Process(os.getpid()))
        data = {
            "version": VERSION,
            "owner": owner.to_json() if owner else None,
            "context": self.context,
            "objects": [o.to_json() for o in self.objects],
        }
        tmp = self.record.with_name(self.record.name + ".tmp")
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, self.record)


def delete_object(cluster: Cluster, applied: AppliedObject, result_dir: str) -> str | None:
    """Delete one recorded object (uid-guarded) and wait until it is gone; None when done."""
    what = f"{applied.kind} {applied.namespace}/{applied.name}"
    uid = applied.uid
    try:
        if not uid:  # created or not? ours only if it carries our annotation
            found = cluster.call(
                f"read {what}",
                _method(cluster, "read", applied.kind),
                applied.name,
                applied.namespace,
            )
            if (found.get("metadata", {}).get("annotations") or {}).get(ANNOTATION) != result_dir:
                return None
            uid = found["metadata"].get("uid")
        body = {"propagationPolicy": "Background", "preconditions": {"uid": uid} if uid else None}
        cluster.call(
            f"delete {what}",
            _method(cluster, "delete", applied.kind),
            applied.name,
            applied.namespace,
            body=body,
        )
    except NotFound:
        return None
    except TargetError as exc:
        return str(exc.message)
    deadline = time.monotonic() + GONE_WAIT_S
    while time.monotonic() < deadline:
        try:
            cluster.call(
                f"read {what}",
                _method(cluster, "read", applied.kind),
                applied.name,
                applied.namespace,
            )
        except NotFound:
            return None
        except TargetError as exc:
            return str(exc.message)
        time.sleep(0.2)
    return f"{what} still exists {GONE_WAIT_S:g}s after its deletion"


def read_kube_file(path: Path) -> tuple[ProcessId | None, str | None, list[AppliedObject]] | None:
    """(owner, context, objects) of a record file, or None when unreadable or another version."""
    data = read_record(path, VERSION)
    if data is None:
        return None
    owner_id = process_id(data.get("owner"))
    objects = [
        AppliedObject(str(o["kind"]), str(o["namespace"]), str(o["name"]), o.get("uid"))
        for o in data.get("objects") or []
        if isinstance(o, dict) and o.get("kind") in KINDS and o.get("name")
    ]
    context = data.get("context")
    return owner_id, context if isinstance(context, str) else None, objects
