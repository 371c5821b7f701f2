"""The resilience scenario against a REAL cluster (docs/kubernetes.md): only with
INFBENCH_K8S_E2E=1 and a KUBECONFIG, the sentiment image imported into the cluster. These are
the figures the fake API server (tests/integration/test_kubernetes.py) cannot give."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infbench.cli import app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("INFBENCH_K8S_E2E") != "1" or not os.environ.get("KUBECONFIG"),
        reason="needs a real cluster: set INFBENCH_K8S_E2E=1 and KUBECONFIG (docs/kubernetes.md)",
    ),
]
SCENARIO = Path(__file__).parents[2] / "scenarios" / "kubernetes" / "resilience.yaml"


def test_deleting_a_pod_on_a_real_cluster(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(SCENARIO), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    run = json.loads(next(out.glob("*/run.json")).read_text())
    assert run["target"]["config"]["simulated"] is False
    fault = run["resilience"]["faults"][0]
    assert fault["error"] is None and len(fault["pods"]) == 1
    assert fault["cluster"]["endpoint_removed_after_s"] is not None
    assert fault["cluster"]["endpoint_added_after_s"] is not None
    assert not list(out.glob("*/target.k8s.json"))
