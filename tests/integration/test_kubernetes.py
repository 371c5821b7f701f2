"""The kubernetes target in whole `infbench run`s against tests/fakekube.py: a fake API server
whose pods are local processes behind a round-robin proxy. Everything measured here is
SIMULATED (run.json's target.config.simulated is true): it shows infbench's contract with the
API — faults, events, cleanup — never how a real cluster behaves (tests/e2e does that)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip(
    "kubernetes", reason="the kubernetes client: pip install -e '.[test]' (or '.[k8s]')"
)

from infbench.cli import app

sys.path.insert(0, str(Path(__file__).parents[1]))
from fakekube import FakeKube

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "sentiment.yaml"


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    with FakeKube() as fake:
        config = fake.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(config))
        yield fake


def scenario(tmp_path: Path, faults: str, seconds: float = 8) -> Path:
    path = tmp_path / "k8s.yaml"
    path.write_text(
        f"""version: 1
name: k8s
target:
  kind: kubernetes
  manifests: ["{MANIFEST}"]
  replicas: 2
  ready: {{timeout: 30s}}
request: {{method: POST, path: /classify, body: {{text: hi}}, timeout: 1s}}
client: {{connections: 4}}
workload:
  seed: 3
  warmup: 1s
  phases:
    - {{name: steady, duration: {seconds}s, arrival: {{process: constant, rate: 40}}}}
faults:
{faults}
"""
    )
    return path


def run_json(out: Path) -> dict[str, Any]:
    runs = list(out.glob("*/run.json"))
    assert len(runs) == 1, runs
    return json.loads(runs[0].read_text())  # type: ignore[no-any-return]


def test_deleting_one_of_two_replicas_is_explained_and_nothing_is_left(
    tmp_path: Path, kube: FakeKube
) -> None:
    path = scenario(
        tmp_path, "  - {at: 3s, action: delete_pod, count: 1, pick: oldest, grace_period: 0}"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    run = run_json(out)
    assert run["target"]["kind"] == "kubernetes"
    assert run["target"]["config"]["simulated"] is True
    assert run["target"]["config"]["replicas"] == 2
    fault = run["resilience"]["faults"][0]
    assert fault["pods"] == ["sentiment-00001"]  # oldest
    assert fault["error"] is None
    assert 3.5 < fault["time_s"] < 6  # 1 s warm-up, then `at` 3 s
    # Killed at once, its keep-alive connections fail: an error window, then recovery.
    assert fault["failed_requests"] >= 1 and fault["error_window"] is not None
    assert fault["recovered"] is True and fault["recovery_s"] is not None
    cluster = fault["cluster"]
    assert cluster["endpoint_removed_after_s"] is not None
    assert cluster["replacement"] == "sentiment-00003"
    assert cluster["replacement_ready_after_s"] > cluster["replacement_created_after_s"]
    assert cluster["endpoint_added_after_s"] is not None
    assert "endpoint re-added" in cluster["explanation"]
    events = [
        json.loads(line)
        for line in (out / next(out.iterdir()).name / "events.jsonl").read_text().splitlines()
    ]
    assert [e["event"] for e in events if e["time_s"] >= fault["time_s"] - 0.01][:1] == [
        "deletion_requested"
    ]
    assert events == run["resilience"]["events"]
    # Only what was created is deleted, and the record of it is gone.
    assert kube.names("deployments") == [] and kube.names("services") == []
    assert kube.names("pods") == [] and not kube.procs
    assert not list(out.glob("*/target.k8s.json"))


def test_scale_fault_adds_a_pod(tmp_path: Path, kube: FakeKube) -> None:
    path = scenario(tmp_path, "  - {at: 1s, action: scale, replicas: 3}", seconds=4)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    run = run_json(out)
    names = [e["event"] for e in run["resilience"]["events"]]
    assert "scale_requested" in names and "pod_ready" in names
    assert (
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/sentiment/scale",
    ) in kube.requests


def test_ctrl_c_deletes_what_was_created(tmp_path: Path, kube: FakeKube) -> None:
    path = scenario(tmp_path, "  - {at: 1s, action: delete_pod}", seconds=30)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infbench", "run", str(path), "--out", str(out), "-q"], env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(out.glob("*/timeseries.csv")):
        time.sleep(0.2)
    time.sleep(3)
    assert kube.names("deployments") == ["sentiment"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert kube.names("deployments") == [] and kube.names("services") == []
    assert not list(out.glob("*/target.k8s.json"))
    assert run_json(out)["status"] == "interrupted"


def test_cleanup_deletes_what_a_killed_infbench_created(tmp_path: Path, kube: FakeKube) -> None:
    path = scenario(tmp_path, "  - {at: 1s, action: delete_pod}", seconds=30)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infbench", "run", str(path), "--out", str(out), "-q"], env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(out.glob("*/timeseries.csv")):
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert kube.names("services") == ["sentiment"] and list(out.glob("*/target.k8s.json"))
    kube.create({"kind": "ConfigMap", "metadata": {"name": "bystander"}})
    result = CliRunner().invoke(app, ["cleanup", str(out)])
    assert result.exit_code == 0, result.output
    assert "deleted 2 kubernetes object(s)" in result.output
    assert kube.names("deployments") == [] and kube.names("services") == []
    assert kube.names("configmaps") == ["bystander"]  # never created by infbench: kept
    assert not list(out.glob("*/target.k8s.json"))


def test_an_existing_object_is_refused_not_adopted(tmp_path: Path, kube: FakeKube) -> None:
    kube.create(
        {
            "kind": "Service",
            "metadata": {"name": "sentiment"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 1}]},
        }
    )
    path = scenario(tmp_path, "  - {at: 1s, action: delete_pod}")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 3, result.output
    assert "already exists" in result.output
    assert kube.names("services") == ["sentiment"]  # not ours: kept
    assert kube.names("deployments") == []  # ours: deleted after the failure
