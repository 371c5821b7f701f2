"""``client.processes: 2`` splits a streamed closed loop between two generator processes.

Four closed-loop workers against the stream server (each answer: 3 content chunks of 2 tokens,
usage, [DONE]); with two processes each runs two workers, and every figure of the phase is
the merge of both: counts and tokens add up, every answer's ITL gaps are in the histogram, and
each process's loop lag is in the phase's ``loop_lag_ms``, and each one's own p99 beside it
(validity judges every process by its own).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from infbench.cli import app
from infbench.results.hlog import tag_totals
from streamserver import StreamServer

CHUNKS, TOKENS_PER_CHUNK = 3, 2


def test_two_processes_share_a_streamed_closed_loop_and_merge_every_figure(
    tmp_path: Path,
) -> None:
    with StreamServer(ttft_s=0.01, itl_s=0.005, chunks=CHUNKS, tokens_per_chunk=2) as server:
        path = tmp_path / "loop.yaml"
        path.write_text(
            f"""version: 1
name: loop
target: {{kind: url, url: "{server.url}"}}
request: {{api: openai-chat, model: m, prompt: "hi", max_tokens: 6, timeout: 5s}}
client: {{processes: 2, connections: 4}}
workload:
  phases:
    - {{name: loop, duration: 1s, arrival: {{process: closed, concurrency: 4}}}}
"""
        )
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "-q"])
        requests = server.requests
    assert result.exit_code in (0, 4), result.output  # 4: a busy machine made it late
    (run_dir,) = out.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["generator"]["processes"] == 2 and len(run["generator"]["per_process"]) == 2
    (phase,) = run["phases"]
    with gzip.open(run_dir / "requests.csv.gz", "rt") as rows:
        lines = rows.read().splitlines()[1:]
    assert phase["completed"] == phase["ok"] == len(lines) == requests > 8
    assert phase["output_tokens"] == CHUNKS * TOKENS_PER_CHUNK * phase["ok"]
    assert phase["tokens_source"] == "usage"
    assert phase["ttft_ms"]["p50"] >= 9.5 and phase["itl_ms"]["p50"] >= 4.5
    assert phase["loop_lag_ms"]["max"] is not None and phase["loop_lag_ms"]["p50"] < 100
    totals = tag_totals(run_dir / "latency.hlog")
    assert totals["loop/itl"].get_total_count() == (CHUNKS - 1) * phase["ok"]
    # one sample per millisecond per process, whether its timer woke the loop for it or not
    assert totals["loop/loop_lag"].get_total_count() > 1000
    own = [entry["loop_lag_p99_ms"]["loop"] for entry in run["generator"]["per_process"]]
    assert len(own) == 2 and all(0 <= p99 < 100 for p99 in own)
    assert run["generator"]["loop_lag_p99_ms"] == {"loop": max(own)}
