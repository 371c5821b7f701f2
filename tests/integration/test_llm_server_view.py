"""The LLM server's own view joined to the client's (DESIGN §8, §9), end to end.

A StreamServer streams the answers (TTFT 60 ms); a fake vLLM ``/metrics`` beside it says the
engine saw a TTFT of 15 ms, a queue time of 4 ms, 2 requests running and 3 waiting (see
tests/fakellmserver.py). Every server figure is known, so it is asserted exactly; the client's
only within bounds far from its expected value (a shared machine).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fakellmserver import VllmMetrics
from infbench.cli import app
from streamserver import StreamServer

runner = CliRunner(env={"COLUMNS": "100"})


def scenario(tmp_path: Path, url: str, metrics: str, extra: str = "", rate: float = 4) -> Path:
    path = tmp_path / "llm.yaml"
    path.write_text(
        f"""
version: 1
name: llm-view
target:
  kind: url
  url: "{url}"
  metrics: {{url: "{metrics}", preset: vllm}}
  gpu: {{nvml: off}}
request: {{api: openai-chat, model: m, prompt: "hello", max_tokens: 10, timeout: 5s}}
client: {{connections: 4}}
workload:
  seed: 1
  phases:
    - {{name: steady, duration: 2s, arrival: {{process: constant, rate: {rate}}}}}
{extra}
"""
    )
    return path


def run(tmp_path: Path, path: Path, out: str = "out") -> tuple[dict[str, Any], str, Path]:
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / out)])
    assert result.exit_code in (0, 4), result.output
    (run_dir,) = [p for p in (tmp_path / out).iterdir() if p.is_dir()]
    return json.loads((run_dir / "run.json").read_text()), result.output, run_dir


def test_server_queue_ttft_kv_and_outside_engine_per_phase(tmp_path: Path) -> None:
    with StreamServer(ttft_s=0.06, itl_s=0.02, chunks=5) as stream, VllmMetrics(stream) as fake:
        data, output, run_dir = run(tmp_path, scenario(tmp_path, stream.url, fake.url))
    (phase,) = data["phases"]
    llm = phase["server_llm"]
    assert llm["preset"] == "vllm"
    # every observation lies in one bucket: the quantiles interpolate inside it, exactly
    assert llm["ttft_ms"]["p50"] == 15.0 and llm["ttft_ms"]["p50_bucket_ms"] == [10.0, 20.0]
    assert llm["ttft_ms"]["p99"] == 19.9
    assert llm["queue_ms"]["p50"] == 150.0 and llm["queue_ms"]["p50_bucket_ms"] == [0.0, 300.0]
    assert llm["itl_ms"]["p50_bucket_ms"] == [10.0, 25.0]
    assert llm["running_max"] == 2 and llm["waiting_max"] == 3
    assert llm["prefix_cache_hit_rate"] == 0.4
    # the answers streamed between the phase's boundary scrapes (the first may precede the
    # opening scrape); one preemption every third answer
    count = llm["ttft_ms"]["count"]
    assert phase["completed"] - 1 <= count <= phase["completed"]
    assert abs(llm["preemptions"] - count / 3) < 1
    assert 0.05 <= llm["kv_cache_usage_max"] <= round(0.05 * stream.requests, 4)
    outside = phase["outside_engine_ms"]
    # client TTFT p50 (>= 60 ms) − server TTFT p50 (15 ms), outside the server's 10-20 ms bucket
    assert outside["p50"] == round(phase["ttft_ms"]["p50"] - 15.0, 3)
    assert 40.0 <= outside["p50"] <= 200.0 and outside["p50_resolved"] is True
    assert outside["p50_range_ms"] == [
        round(phase["ttft_ms"]["p50"] - 20.0, 3),
        round(phase["ttft_ms"]["p50"] - 10.0, 3),
    ]
    assert data["server"]["llm"]["series"]["kv_cache_usage"] == "vllm:kv_cache_usage_perc"
    assert not any("GPU" in w for w in data["warnings"])  # turned off: nothing to say
    header = (run_dir / "timeseries.csv").read_text().splitlines()[0].split(",")
    assert {"server_running", "server_waiting", "server_kv_cache_usage"} <= set(header)
    # each second's own server p99: every TTFT lies in 10-20 ms, every queue time in 0-300 ms
    with open(run_dir / "timeseries.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    ttft = {float(row["server_ttft_p99_ms"]) for row in rows if row["server_ttft_p99_ms"]}
    queue = {float(row["server_queue_p99_ms"]) for row in rows if row["server_queue_p99_ms"]}
    assert ttft == {19.9} and queue == {297.0}, (ttft, queue)
    assert "10–20 ms" in output and "LLM server" in output  # the bucket, not 0.01 ms digits
    report = (run_dir / "report.html").read_text()
    assert "queue depth, running requests and KV-cache use" in report
    assert "own TTFT and queue-time p99 of that second" in report


def test_renamed_series_and_a_missing_one_named(tmp_path: Path) -> None:
    """vLLM before 0.9 called the KV gauge gpu_cache_usage_perc; a preset's series the server
    does not expose (here inter_token_latency under both names: dropped) is a warning."""
    stream_server = StreamServer(ttft_s=0.02, itl_s=0.01, chunks=3)
    with stream_server as stream, VllmMetrics(stream, renamed=True) as fake:
        fake.registry.unregister(fake.histograms_by_name["vllm:time_per_output_token_seconds"])
        data, _, _ = run(tmp_path, scenario(tmp_path, stream.url, fake.url))
    (phase,) = data["phases"]
    assert data["server"]["llm"]["series"]["kv_cache_usage"] == "vllm:gpu_cache_usage_perc"
    assert phase["server_llm"]["kv_cache_usage_max"] > 0
    assert phase["server_llm"]["prefix_cache_hit_rate"] == 0.4  # the gpu_prefix_cache_ counters
    (warning,) = [w for w in data["warnings"] if "preset vllm" in w]
    assert "itl (vllm:inter_token_latency_seconds or vllm:time_per_output_token_seconds)" in warning


def test_unreachable_metrics_url_is_a_warning_naming_it(tmp_path: Path) -> None:
    with StreamServer(ttft_s=0.01, itl_s=0.005, chunks=2) as stream:
        dead = "http://127.0.0.1:9/metrics"  # the discard port: nothing listens
        data, _, _ = run(tmp_path, scenario(tmp_path, stream.url, dead))
    (phase,) = data["phases"]
    assert phase["completed"] > 0 and "server_llm" not in phase
    assert any(dead in w and "could not be read" in w for w in data["warnings"]), data["warnings"]
