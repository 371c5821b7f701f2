"""A streamed scenario keeps its LLM figures through every merge (DESIGN §5b, STYLE 14).

One scenario against a fake OpenAI-style stream server, run once in one process, then through
``--repeat 2``, ``client.processes: 2`` and ``client.engine: ray`` (a local Ray instance).
Every way reports the same counts (requests, output tokens, their source), and its TTFT and
TPOT percentiles equal, within HDR precision, those computed here from the raw rows it wrote
(the same stamps: exact), with ITL, which has no column in the rows, present and sane.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from infbench.analysis.stats import histogram_summary
from infbench.cli import app
from infbench.recorder.hdr import new_histogram, record_values
from streamserver import StreamServer

REQUESTS = 16  # 2 s at 8/s
TOKENS = 8  # 4 content chunks of 2 tokens
HIGHEST_US = 25_000_000  # the histograms' ceiling for a 5 s timeout (load.local.highest_us)
NS_PER_S = 1_000_000_000

SCENARIO = """version: 1
name: llm-merge
target: {{kind: url, url: "{url}"}}
request: {{api: openai-chat, model: m, prompt: "hello", max_tokens: 8, timeout: 5s}}
client: {{connections: 8, ray: {{actors: 2}}}}
workload:
  seed: 3
  phases:
    - {{name: steady, duration: 2s, arrival: {{process: constant, rate: 8}}}}
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with StreamServer(ttft_s=0.02, itl_s=0.005, chunks=4, tokens_per_chunk=2) as server:
        path = tmp_path_factory.mktemp("scenario") / "llm.yaml"
        path.write_text(SCENARIO.format(url=server.url))
        yield path


def _run(scenario: Path, out: Path, *extra: str) -> Path:
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "-q", *extra])
    assert result.exit_code in (0, 4), result.output  # 4: a busy machine made the run late
    (run_dir,) = out.iterdir()
    return run_dir


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with gzip.open(run_dir / "requests.csv.gz", "rt", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["phase"] == "steady"]


def _from_rows(rows: list[dict[str, str]]) -> dict[str, Any]:
    """TTFT and TPOT of the rows, as the recorder computes them, and output tokens a second."""
    ttft, tpot = new_histogram(HIGHEST_US), new_histogram(HIGHEST_US)
    first = np.array([int(r["first_token_ns"]) for r in rows], dtype=np.int64)
    last = np.array([int(r["last_token_ns"]) for r in rows], dtype=np.int64)
    intended = np.array([int(r["intended_ns"]) for r in rows], dtype=np.int64)
    tokens = np.array([int(r["output_tokens"]) for r in rows], dtype=np.int64)
    record_values(ttft, (first - intended) // 1000)
    record_values(tpot, (last - first) // (tokens - 1) // 1000)
    seconds: Counter[int] = Counter()
    for row in rows:
        seconds[int(row["done_ns"]) // NS_PER_S] += int(row["output_tokens"])
    return {"ttft": histogram_summary(ttft), "tpot": histogram_summary(tpot), "seconds": seconds}


def _check(run_dir: Path, rows: list[dict[str, str]], runs: int) -> dict[str, Any]:
    (phase,) = json.loads((run_dir / "run.json").read_text())["phases"]
    assert phase["completed"] == phase["ok"] == runs * REQUESTS == len(rows), phase["errors"]
    assert phase["output_tokens"] == runs * REQUESTS * TOKENS
    assert phase["input_tokens"] == runs * REQUESTS * 7 and phase["tokens_source"] == "usage"
    exact = _from_rows(rows)
    for metric in ("ttft", "tpot"):
        for key, value in exact[metric].items():
            assert phase[f"{metric}_ms"][key] == pytest.approx(value, rel=1e-3, abs=1e-3), key
    itl = phase["itl_ms"]
    assert 4.5 <= itl["p50"] <= itl["p99"] <= itl["max"] < 1000  # a chunk every 5 ms
    assert 0 < phase["peak_output_tps"] <= phase["output_tokens"]
    assert phase["mean_concurrency"] > 0
    return dict(phase)


def test_repeat_keeps_every_llm_figure(scenario: Path, tmp_path: Path) -> None:
    run_dir = _run(scenario, tmp_path / "out", "--repeat", "2")
    repetitions = [_rows(run_dir / f"run-{k}") for k in (1, 2)]
    phase = _check(run_dir, repetitions[0] + repetitions[1], runs=2)
    # the repetitions' seconds follow each other: the peak is the larger of their own peaks
    peaks = [max(_from_rows(rows)["seconds"].values()) for rows in repetitions]
    assert phase["peak_output_tps"] == max(peaks)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="one-process"),
        pytest.param(("--set", "client.processes=2"), id="processes"),
        pytest.param(("--ray", "local"), id="ray", marks=pytest.mark.slow),
    ],
)
def test_every_engine_keeps_every_llm_figure(
    scenario: Path, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    if extra[-1:] == ("local",):
        pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    run_dir = _run(scenario, tmp_path / "out", *extra)
    rows = _rows(run_dir)
    phase = _check(run_dir, rows, runs=1)
    # seconds side by side: the peak is that of the merged seconds (a row handed over after
    # its second was written joins the next one, so only nearly: never a sum of peaks)
    seconds = _from_rows(rows)["seconds"]
    assert phase["peak_output_tps"] == pytest.approx(max(seconds.values()), abs=2 * TOKENS)
