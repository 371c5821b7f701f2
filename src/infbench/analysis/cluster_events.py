"""What the cluster did after each fault: the event timeline read against the error window.

For a ``delete_pod`` fault at F (seconds from the run's start) with boundary B (the next fault
or the run's end), from the events of ``events.jsonl`` in [F, B):

- the deleted pods' ``pod_terminating`` and ``endpoint_removed`` (first of each);
- the replacement: the first pod created after F, and its scheduling, readiness and
  ``endpoint_added``;
- restarts of containers in the window.

Each is given as seconds after F. The sentence under ``explanation`` says the order a reader
needs: requests fail while the Service still routes to a pod that is going away, and capacity
is back once the replacement's endpoint is added. Pure: dictionaries in, dictionaries out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["explain_fault", "explain_faults"]

Event = Mapping[str, Any]


def _first(events: Sequence[Event], name: str, pods: set[str] | None = None) -> Event | None:
    return next(
        (e for e in events if e["event"] == name and (pods is None or e.get("pod") in pods)),
        None,
    )


def _after(event: Event | None, fault_s: float) -> float | None:
    return None if event is None else round(float(event["time_s"]) - fault_s, 3)


def explain_fault(
    fault: Mapping[str, Any], events: Sequence[Event], boundary_s: float
) -> dict[str, Any]:
    """The ``cluster`` entry of one fault (see the module docstring)."""
    fault_s = float(fault["time_s"])
    window = [e for e in events if fault_s - 0.001 <= float(e["time_s"]) < boundary_s]
    deleted = set(fault.get("pods") or [])
    existing = {e.get("pod") for e in events if float(e["time_s"]) < fault_s}
    created = next(
        (e for e in window if e["event"] == "pod_created" and e.get("pod") not in existing), None
    )
    new = {str(created["pod"])} if created else set()
    timeline = {
        "terminating_after_s": _after(_first(window, "pod_terminating", deleted or None), fault_s),
        "endpoint_removed_after_s": _after(
            _first(window, "endpoint_removed", deleted or None), fault_s
        ),
        "pod_deleted_after_s": _after(_first(window, "pod_deleted", deleted or None), fault_s),
        "replacement": created["pod"] if created else None,
        "replacement_created_after_s": _after(created, fault_s),
        "replacement_scheduled_after_s": _after(_first(window, "pod_scheduled", new), fault_s),
        "replacement_ready_after_s": _after(_first(window, "pod_ready", new), fault_s),
        "endpoint_added_after_s": _after(_first(window, "endpoint_added", new), fault_s),
        "container_restarts": sum(1 for e in window if e["event"] == "container_restarted"),
    }
    timeline["explanation"] = _sentence(fault, timeline)
    return timeline


def _sentence(fault: Mapping[str, Any], t: Mapping[str, Any]) -> str:
    parts = [f"{fault.get('action')} at {float(fault['time_s']):.1f} s"]
    labels = (
        ("terminating_after_s", "pod terminating"),
        ("endpoint_removed_after_s", "endpoint removed"),
        ("replacement_created_after_s", "replacement created"),
        ("replacement_ready_after_s", "replacement Ready"),
        ("endpoint_added_after_s", "endpoint re-added"),
    )
    parts += [f"{label} +{t[key]:.2f} s" for key, label in labels if t.get(key) is not None]
    window = fault.get("error_window")
    if isinstance(window, list) and len(window) == 2:
        parts.append(
            f"errors from +{float(window[0]) - float(fault['time_s']):.2f} s "
            f"to +{float(window[1]) - float(fault['time_s']):.2f} s"
        )
    return "; ".join(parts)


def explain_faults(faults: list[dict[str, Any]], events: Sequence[Event], end_s: float) -> None:
    """Add ``cluster`` to every done fault of run.json's resilience section, in place."""
    times = sorted(float(f["time_s"]) for f in faults if f.get("time_s") is not None)
    for fault in faults:
        if fault.get("time_s") is None:
            continue
        later = [t for t in times if t > float(fault["time_s"])]
        fault["cluster"] = explain_fault(fault, events, min(later, default=end_s))
