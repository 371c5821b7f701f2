"""Delete the Kubernetes objects an infbench that was killed had created (``target.k8s.json``).

The same rule as for launched servers (``targets/cleanup.py``): a record whose infbench still
runs is left alone; otherwise each recorded object is deleted with its uid as a precondition
(``manifests.delete_object``), so only what that run created goes. Without the kubernetes
client, or without access to the cluster, the record is kept and the reason said.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from infbench.errors import TargetError
from infbench.scenario.kubernetes import KUBE_EXTRA
from infbench.targets.kube.manifests import KUBE_FILE, delete_object, read_kube_file
from infbench.targets.pidfile import Leftover

__all__ = ["KubeLeftover", "clean_kube_leftovers"]


@dataclass
class KubeLeftover(Leftover):
    deleted: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.skipped:
            return f"{self.run_dir}: kubernetes objects left alone, {self.skipped}"
        if not self.deleted:
            return f"{self.run_dir}: removed a stale {KUBE_FILE} (nothing left to delete)"
        return (
            f"{self.run_dir}: deleted {len(self.deleted)} kubernetes object(s) created by "
            f"infbench pid {self.owner_pid} that was killed: {', '.join(self.deleted)}"
        )


def _clean(path: Path) -> KubeLeftover | None:
    record = read_kube_file(path)
    if record is None:
        return KubeLeftover(path, None, skipped=f"{KUBE_FILE} is unreadable or of another version")
    owner, context, objects = record
    if owner is not None and (owner.pid == os.getpid() or owner.process() is not None):
        return None  # a run in progress owns them
    leftover = KubeLeftover(path, owner.pid if owner else None)
    if objects:
        try:
            from infbench.targets.kube.api import Cluster

            clusters: dict[str, Cluster] = {}
            for applied in objects:
                cluster = clusters.get(applied.namespace) or Cluster(applied.namespace, context)
                clusters[applied.namespace] = cluster
                problem = delete_object(cluster, applied, str(path.parent))
                if problem:
                    leftover.skipped = problem
                    return leftover
                leftover.deleted.append(f"{applied.kind}/{applied.namespace}/{applied.name}")
        except ImportError:
            leftover.skipped = f"the kubernetes client is not installed: {KUBE_EXTRA}"
            return leftover
        except TargetError as exc:
            leftover.skipped = exc.message
            return leftover
    with contextlib.suppress(OSError):
        path.unlink()
    return leftover


def clean_kube_leftovers(root: Path) -> list[Leftover]:
    paths = sorted([*root.glob(f"*/{KUBE_FILE}"), *root.glob(f"*/*/{KUBE_FILE}")])
    return [found for path in paths if (found := _clean(path)) is not None]
