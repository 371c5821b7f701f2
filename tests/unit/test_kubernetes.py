"""The kubernetes target without a cluster: scenario validation, pod picking, the event
timeline's diffs, the per-fault explanation, and manifest checks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infbench.analysis.cluster_events import explain_fault
from infbench.cli import app
from infbench.errors import ScenarioError
from infbench.observe.cluster_watch import endpoint_changes, pod_changes, routable
from infbench.scenario.faults import Fault
from infbench.targets.kube.manifests import load_manifests
from infbench.targets.kube.pick import pick_pods

ROOT = Path(__file__).parents[2]
# validate checks a kubernetes target only with its client there to run it
CLIENT = "the kubernetes client: pip install -e '.[test]' (or '.[k8s]')"

BASE = """version: 1
name: k8s
target:
  kind: kubernetes
  service: sentiment
  url: http://127.0.0.1:30300
workload:
  phases: [{name: steady, duration: 10s, arrival: {process: constant, rate: 5}}]
"""


def validate(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def test_the_bundled_resilience_scenario_is_valid(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes", reason=CLIENT)
    path = ROOT / "scenarios" / "kubernetes" / "resilience.yaml"
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("faults: [{at: 2s, action: delete_pod, pick: sometimes}]", "pick"),
        ("faults: [{at: 2s, action: delete_pod, grace_period: -1}]", "grace_period"),
        ("faults: [{at: 2s, action: scale}]", "replicas"),
        ("faults: [{at: 2s, action: delete_pod, pick: named}]", "pods"),
        ("faults: [{at: 20s, action: delete_pod}]", "faults[0]"),
        ("faults: [{at: 2s, action: kill_worker}]", "delete_pod or scale"),
        ("faults: [{at: 2s, action: delete_pod, replicas: 2}]", "replicas"),
    ],
)
def test_every_mistake_names_its_key(tmp_path: Path, extra: str, key: str) -> None:
    pytest.importorskip("kubernetes", reason=CLIENT)
    code, output = validate(tmp_path, BASE + extra + "\n")
    assert code == 2, output
    assert key in output


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ("  replicas: -1\n", "replicas"),
        ("  namespace: Not_A_Name\n", "namespace"),
        ("  selector: {app: x}\n", "selector"),
        ("  port_forward: true\n", "port_forward"),
    ],
)
def test_target_mistakes_name_their_key(tmp_path: Path, target: str, key: str) -> None:
    pytest.importorskip("kubernetes", reason=CLIENT)
    code, output = validate(tmp_path, BASE.replace("workload:", target + "workload:"))
    assert code == 2, output
    assert key in output


def test_port_forward_is_refused_with_pod_faults_and_says_why(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes", reason=CLIENT)
    text = BASE.replace("  url: http://127.0.0.1:30300\n", "  port_forward: true\n")
    code, output = validate(tmp_path, text + "faults: [{at: 2s, action: delete_pod}]\n")
    assert code == 2
    assert "one pod through the API server" in " ".join(output.split())


def test_cluster_faults_need_a_kubernetes_target(tmp_path: Path) -> None:
    text = BASE.replace("  kind: kubernetes\n  service: sentiment\n", "  kind: url\n").replace(
        "url: http", "url: http"
    )
    code, output = validate(tmp_path, text + "faults: [{at: 2s, action: scale, replicas: 1}]\n")
    assert code == 2 and "faults" in output


def test_without_the_client_validation_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "kubernetes" else real(name, *a),
    )
    code, output = validate(tmp_path, BASE)
    assert code == 2
    assert "pip install 'infbench[k8s]'" in output


# --- picking pods ------------------------------------------------------------------------------


def pod(name: str, created: str, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:09Z"
    return {"metadata": meta}


PODS = [
    pod("b", "2024-01-01T00:00:02Z"),
    pod("a", "2024-01-01T00:00:03Z"),
    pod("c", "2024-01-01T00:00:01Z", True),
]


def test_oldest_skips_terminating_pods() -> None:
    chosen, problem = pick_pods(
        PODS, Fault(at=1, action="delete_pod", pick="oldest"), random.Random(0)
    )
    assert chosen == ["b"] and problem is None


def test_random_is_seeded() -> None:
    fault = Fault(at=1, action="delete_pod", count=1)
    picks = {tuple(pick_pods(PODS, fault, random.Random(f"7:{i}"))[0]) for i in range(20)}
    assert picks <= {("a",), ("b",)} and len(picks) == 2
    assert pick_pods(PODS, fault, random.Random("7:0")) == pick_pods(
        PODS, fault, random.Random("7:0")
    )


def test_named_and_too_many() -> None:
    named = Fault(at=1, action="delete_pod", pick="named", pods=["a", "zz"])
    assert pick_pods(PODS, named, random.Random(0)) == (["a"], "no such running pod: zz")
    many = Fault(at=1, action="delete_pod", count=5)
    chosen, problem = pick_pods(PODS, many, random.Random(0))
    assert sorted(chosen) == ["a", "b"] and problem == "5 pod(s) to delete, 2 running"


# --- the event timeline ------------------------------------------------------------------------


def ready(value: bool) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "True" if value else "False"}]}


def test_pod_changes_follow_a_pod_through_its_life() -> None:
    created = {"metadata": {"name": "p"}, "spec": {}, "status": {}}
    scheduled = {**created, "spec": {"nodeName": "n1"}, "status": ready(False)}
    up = {**scheduled, "status": ready(True)}
    restarted = {**up, "status": {**ready(True), "containerStatuses": [{"restartCount": 1}]}}
    going = {
        **up,
        "metadata": {"name": "p", "deletionTimestamp": "x", "deletionGracePeriodSeconds": 0},
    }
    assert pod_changes(None, created) == [("pod_created", None)]
    assert pod_changes(created, scheduled) == [("pod_scheduled", "n1")]
    assert pod_changes(scheduled, up) == [("pod_ready", None)]
    assert pod_changes(up, restarted) == [("container_restarted", "restart count 1")]
    assert pod_changes(up, going) == [("pod_terminating", "grace 0s")]
    assert pod_changes(going, None) == [("pod_deleted", None)]


def test_endpoints_count_only_ready_not_terminating() -> None:
    slice_ = {
        "endpoints": [
            {"conditions": {"ready": True}, "targetRef": {"name": "a"}},
            {"conditions": {"ready": False}, "targetRef": {"name": "b"}},
            {"conditions": {"ready": True, "terminating": True}, "targetRef": {"name": "c"}},
        ]
    }
    assert routable(slice_) == {"a"}
    assert endpoint_changes({"a", "b"}, {"a", "c"}) == [
        ("endpoint_removed", "b"),
        ("endpoint_added", "c"),
    ]


def test_a_fault_is_explained_by_what_followed_it() -> None:
    events = [
        {"time_s": 1.0, "event": "pod_ready", "pod": "p1"},
        {"time_s": 10.0, "event": "deletion_requested", "pod": "p1"},
        {"time_s": 10.1, "event": "pod_terminating", "pod": "p1"},
        {"time_s": 10.2, "event": "endpoint_removed", "pod": "p1"},
        {"time_s": 10.3, "event": "pod_created", "pod": "p3"},
        {"time_s": 10.4, "event": "pod_scheduled", "pod": "p3"},
        {"time_s": 12.0, "event": "pod_ready", "pod": "p3"},
        {"time_s": 12.1, "event": "endpoint_added", "pod": "p3"},
        {"time_s": 30.0, "event": "pod_created", "pod": "late"},
    ]
    fault = {"action": "delete_pod", "time_s": 10.0, "pods": ["p1"], "error_window": [10.05, 10.2]}
    cluster = explain_fault(fault, events, boundary_s=20.0)
    assert cluster["endpoint_removed_after_s"] == 0.2
    assert cluster["replacement"] == "p3"
    assert cluster["replacement_ready_after_s"] == 2.0
    assert cluster["endpoint_added_after_s"] == 2.1
    assert cluster["explanation"].endswith("errors from +0.05 s to +0.20 s")


# --- manifests -----------------------------------------------------------------------------------


def test_the_deploy_manifests_load(tmp_path: Path) -> None:
    docs = load_manifests([str(ROOT / "deploy/kubernetes/sentiment.yaml")], ROOT, "default")
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert all(d["metadata"]["namespace"] == "default" for d in docs)
    hpa = load_manifests([str(ROOT / "deploy/kubernetes/hpa.yaml")], ROOT, "default")
    assert hpa[0]["kind"] == "HorizontalPodAutoscaler"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("kind: Secret\nmetadata: {name: x}\n", "kind 'Secret' is not supported"),
        ("kind: Service\nmetadata: {}\n", "metadata.name"),
        ("kind: Service\nmetadata: {name: x, namespace: other}\n", "differs from target.namespace"),
        ("- 1\n", "not a Kubernetes object"),
    ],
)
def test_manifest_mistakes(tmp_path: Path, doc: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(doc)
    with pytest.raises(ScenarioError, match=message):
        load_manifests(["m.yaml"], tmp_path, "default")


# --- the report --------------------------------------------------------------------------------


def test_endpoint_events_are_drawn_on_the_time_plots() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from infbench.analysis.resilience import resilience_plot_data
    from infbench.report.fault_marks import draw_faults
    from infbench.results.records import Resilience

    section = Resilience(
        {
            "faults": [{"action": "delete_pod", "time_s": 10.0}],
            "restarts": [],
            "events": [
                {"time_s": -2.0, "event": "endpoint_added", "pod": "p1"},
                {"time_s": 10.2, "event": "endpoint_removed", "pod": "p1"},
                {"time_s": 10.3, "event": "pod_created", "pod": "p3"},
                {"time_s": 12.1, "event": "endpoint_added", "pod": "p3"},
            ],
        }
    )
    plot = resilience_plot_data(section)
    assert plot is not None
    assert plot.events == ((10.2, "endpoint_removed"), (12.1, "endpoint_added"))
    fig, ax = plt.subplots()
    draw_faults(ax, plot)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "endpoint removed" in labels and "endpoint added" in labels
    plt.close(fig)
