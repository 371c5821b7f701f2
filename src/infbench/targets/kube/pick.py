"""Which pods a ``delete_pod`` fault deletes (pure: pods in, names out)."""

from __future__ import annotations

import random

from infbench.scenario.faults import Fault
from infbench.targets.kube.api import Json

__all__ = ["pick_pods"]


def pick_pods(pods: list[Json], fault: Fault, rng: random.Random) -> tuple[list[str], str | None]:
    """(names to delete, a problem or None).

    Pods already terminating are never candidates (deleting them again does nothing). random
    samples from the names in sorted order, so the same seed picks the same pod in the same
    cluster state; oldest goes by creation time, then name; named takes the ``pods`` given.
    """
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    names = sorted(str(p["metadata"]["name"]) for p in live)
    want = fault.pod_count
    if fault.pick == "named":
        chosen = [n for n in fault.pods or [] if n in names]
        missing = [n for n in fault.pods or [] if n not in names]
        return chosen, f"no such running pod: {', '.join(missing)}" if missing else None
    if fault.pick == "oldest":
        ordered = sorted(
            live,
            key=lambda p: (
                str(p["metadata"].get("creationTimestamp") or ""),
                str(p["metadata"]["name"]),
            ),
        )
        chosen = [str(p["metadata"]["name"]) for p in ordered[:want]]
    else:
        chosen = rng.sample(names, min(want, len(names)))
    problem = None
    if len(chosen) < want:
        problem = f"{want} pod(s) to delete, {len(names)} running"
    return chosen, problem
