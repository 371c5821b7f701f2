"""The study's services for real: `bentoml serve` of the RoBERTa baseline and optimized
variants (ROBERTA_SIZE=tiny), driven by scenarios/study/open.yaml for a few seconds each and
compared. Needs the `study` extra (torch, transformers, onnx, onnxruntime)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infbench.cli import app

MISSING = [
    name
    for name in ("torch", "transformers", "onnx", "onnxruntime")
    if importlib.util.find_spec(name) is None
]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"needs the study extra (pip install -e '.[study]'); missing: {', '.join(MISSING)}",
    ),
]

STUDY = Path(__file__).resolve().parents[2] / "scenarios" / "study" / "open.yaml"
runner = CliRunner()


def serve_and_run(tmp_path: Path, variant: str, *more: str) -> dict[str, Any]:
    out = tmp_path / variant
    args = [
        "run", str(STUDY), "--out", str(out), "-q",
        "--set", f"target.service=../services/roberta:{variant}",
        "--set", "target.env.ROBERTA_SIZE=tiny",
        # a fresh cache: the optimized variant exports and fuses its ONNX model at start-up
        "--set", f"target.env.ROBERTA_ONNX_CACHE={tmp_path / 'onnx'}",
        "--set", "workload.warmup=1s",
        "--set", "workload.phases=[{name: steady, duration: 4s, "
                 "arrival: {process: poisson, rate: 15}}]",
        *more,
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    run: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return run


def test_baseline_and_optimized_serve_and_compare(tmp_path: Path) -> None:
    runs = {variant: serve_and_run(tmp_path, variant) for variant in ("Baseline", "Optimized")}
    for variant, run in runs.items():
        (phase,) = run["phases"]
        assert phase["ok"] == phase["scheduled"] > 30, variant
        assert run["target"]["config"]["bentoml_config"]["services"][variant]["workers"] == 1
        assert "tiny" in json.dumps(run["scenario"]["target"]["env"])
    assert any((tmp_path / "onnx").glob("*-fused.onnx")), "the optimized variant exported ONNX"
    server = runs["Optimized"]["server"]["phases"]["steady"]
    assert server["mean_batch_size"] is not None and server["mean_batch_size"] >= 1
    base, cand = (Path(runs[v]["result_dir"]) for v in ("Baseline", "Optimized"))
    compared = runner.invoke(app, ["compare", str(base), str(cand), "--format", "json"])
    assert compared.exit_code == 0, compared.output
    rows = json.loads(compared.output)["rows"]
    assert {row["metric"] for row in rows if row["phase"] == "steady"} >= {"p50", "p99"}


def test_optimized_with_batching_off(tmp_path: Path) -> None:
    # ROBERTA_MAX_BATCH_SIZE=1 is the grid's "batching off" point: a plain API, same model.
    run = serve_and_run(tmp_path, "Optimized", "--set", 'target.env.ROBERTA_MAX_BATCH_SIZE="1"')
    (phase,) = run["phases"]
    assert phase["ok"] == phase["scheduled"] > 30
    assert run["server"]["phases"]["steady"]["mean_batch_size"] is None  # nothing was batched
