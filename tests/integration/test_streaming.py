"""Streamed LLM answers end to end (DESIGN §5b): infbench run against a fake streaming server.

The server's timing is known (TTFT 60 ms, then 2 tokens every 20 ms), so the figures are
asserted within HDR precision plus bounds far from the expected values for scheduling noise
(never tight timings: the machines are shared).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infbench.cli import app
from streamserver import StreamServer

runner = CliRunner(env={"COLUMNS": "100"})


def scenario(tmp_path: Path, url: str, sender: str, requests: int = 6) -> Path:
    path = tmp_path / "llm.yaml"
    path.write_text(
        f"""
version: 1
name: llm
target: {{kind: url, url: "{url}"}}
request: {{api: openai-chat, model: m, prompt: "hello", max_tokens: 10, timeout: 5s}}
client: {{sender: {sender}, connections: 4}}
workload:
  seed: 1
  phases:
    - {{name: steady, duration: {requests * 0.25}s, arrival: {{process: constant, rate: 4}}}}
slo: {{ttft: 1s, tpot: 100ms}}
"""
    )
    return path


def run(
    tmp_path: Path, url: str, sender: str, exit_codes: tuple[int, ...] = (0, 4)
) -> dict[str, object]:
    """run.json of the run (exit 4 allowed: a busy machine may make the generator late)."""
    result = runner.invoke(
        app, ["run", str(scenario(tmp_path, url, sender)), "--out", str(tmp_path), "-q"]
    )
    assert result.exit_code in exit_codes, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data: dict[str, object] = json.loads((run_dir / "run.json").read_text())
    data["_dir"] = str(run_dir)
    return data


@pytest.mark.parametrize("sender", ["fast", "aiohttp"])
def test_ttft_tpot_itl_and_tokens_from_a_stream_with_every_quirk(
    tmp_path: Path, sender: str
) -> None:
    knobs = {"ttft_s": 0.06, "itl_s": 0.02, "chunks": 5, "tokens_per_chunk": 2}
    with StreamServer(**knobs, role_chunk=True, ping=True, split=True) as server:
        data = run(tmp_path, server.url, sender)
    (phase,) = data["phases"]  # type: ignore[misc]
    assert phase["completed"] == phase["ok"] == 6, phase["errors"]
    assert 59.0 <= phase["ttft_ms"]["p50"] <= 90.0  # 60 ms of TTFT (+ half a ms of split)
    assert 19.5 <= phase["itl_ms"]["p50"] <= 35.0  # a content chunk every 20 ms
    # TPOT = (last − first content chunk) / (tokens − 1) = 4 × 20 ms / 9
    assert 8.8 <= phase["tpot_ms"]["p50"] <= 14.0
    assert phase["output_tokens"] == 6 * 10 and phase["input_tokens"] == 6 * 7
    assert phase["tokens_source"] == "usage"
    assert phase["goodput_rps"] == phase["achieved_rps"]  # every answer met ttft and tpot
    with gzip.open(Path(str(data["_dir"])) / "requests.csv.gz", "rt") as rows:
        header = rows.readline().strip().split(",")
        first = dict(zip(header, rows.readline().strip().split(","), strict=True))
    assert header[-7:] == [
        "first_token_ns",
        "last_token_ns",
        "chunks",
        "input_tokens",
        "output_tokens",
        "tokens_source",
        "tokenizer_tokens",
    ]
    assert first["chunks"] == "5" and first["output_tokens"] == "10"
    assert first["tokens_source"] == "usage" and first["tokenizer_tokens"] == ""  # no tokenizer
    tags = {line.split(",")[0] for line in (Path(str(data["_dir"])) / "latency.hlog").open()}
    assert {"Tag=steady/ttft", "Tag=steady/tpot", "Tag=steady/itl"} <= tags


@pytest.mark.parametrize(
    ("knobs", "kind"),
    [({"cut_at": 2}, "reset"), ({"error_at": 1}, "stream_error")],
    ids=["ended-early", "error-event"],
)
def test_a_broken_stream_is_classified(tmp_path: Path, knobs: dict[str, int], kind: str) -> None:
    with StreamServer(ttft_s=0.01, itl_s=0.005, **knobs) as server:
        data = run(tmp_path, server.url, "fast", exit_codes=(1,))  # no answer met the SLO
    (phase,) = data["phases"]  # type: ignore[misc]
    assert phase["errors"] == {kind: phase["completed"]}


def test_find_max_on_ttft_with_shared_prefix_prompts(tmp_path: Path) -> None:
    """`sweep --find-max --slo 'ttft<=…'`: levels judged on the TTFT and TPOT histograms.

    One connection and answers of about 18 ms (TTFT 10 ms, then 3 chunks 4 ms apart): queueing
    in the generator, counted in TTFT from the intended send time, breaks the SLO somewhere
    past ~40/s. The prompts are synthetic, in 2 shared-prefix groups, with a fixed output.
    """
    path = tmp_path / "llm.yaml"
    path.write_text(
        """
version: 1
name: llm-capacity
target: {kind: url, url: "URL"}
request:
  api: openai-chat
  model: m
  prompts:
    synthetic:
      count: 20
      input_tokens: {mean: 12, sd: 4, min: 4, max: 20}
      shared_prefix: {groups: 2, prefix_tokens: 6}
  max_tokens: 6
  fixed_output: true
  timeout: 5s
client: {sender: fast, connections: 1}
workload:
  seed: 4
  phases:
    - {name: steady, duration: 1s, arrival: {process: constant, rate: 10}}
"""
    )
    with StreamServer(ttft_s=0.01, itl_s=0.004, chunks=3) as server:
        path.write_text(path.read_text().replace("URL", server.url))
        result = runner.invoke(app, [
            "sweep", str(path), "--out", str(tmp_path / "out"), "--find-max",
            "--slo", "ttft<=150ms,tpot<=50ms", "--level-runs", "1", "--max-runs", "6",
            "--precision", "0.5", "--max-rate", "160",
        ])  # fmt: skip
    assert result.exit_code == 0, result.output
    (directory,) = (tmp_path / "out").iterdir()
    doc = json.loads((directory / "sweep.json").read_text())
    found = doc["result"]
    assert found["max_rate"] is not None and found["first_failing_rate"] is not None
    assert 10 <= found["max_rate"] < found["first_failing_rate"] <= 160
    for level in doc["levels"]:
        estimates = {e["metric"]: e["value"] for e in level["verdict"]["estimates"]}
        assert set(estimates) == {"ttft", "tpot"}
        assert estimates["ttft"] < level["p99_ms"]  # TTFT's own histogram, not E2E latency
    bodies = [json.loads(body) for body in server.bodies]
    assert all(b["max_tokens"] == b["min_tokens"] == 6 and b["ignore_eos"] for b in bodies)
    prompts = [b["messages"][0]["content"] for b in bodies]
    assert len({" ".join(p.split()[:6]) for p in prompts}) == 2  # two groups' prefixes
    assert 2 < len(set(prompts)) <= 20


def test_a_local_tokenizer_counts_when_the_server_sends_no_usage(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip(
        "tokenizers", reason="request.tokenizer needs tokenizers: pip install -e '.[test]'"
    )
    words = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    words.save(str(tmp_path / "tokenizer.json"))
    with StreamServer(ttft_s=0.01, itl_s=0.005, chunks=4, tokens_per_chunk=3, usage=False) as srv:
        path = scenario(tmp_path, srv.url, "fast")
        text = path.read_text().replace("timeout: 5s}", "timeout: 5s, tokenizer: tokenizer.json}")
        path.write_text(text)
        result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code in (0, 1, 4), result.output
    (run_dir,) = (tmp_path / "out").iterdir()
    (phase,) = json.loads((run_dir / "run.json").read_text())["phases"]
    assert phase["tokens_source"] == "tokenizer"
    assert phase["output_tokens"] == 12 * phase["ok"] > 0  # 4 chunks of 3 words, no usage
    assert phase["input_tokens"] == 0


def test_a_stream_that_stalls_past_the_timeout_is_a_timeout(tmp_path: Path) -> None:
    with StreamServer(ttft_s=0.01, itl_s=0.005, stall_at=2) as server:
        path = scenario(tmp_path, server.url, "fast", requests=2)
        path.write_text(path.read_text().replace("timeout: 5s", "timeout: 1s"))
        result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1, result.output  # no answer met the SLO
    (run_dir,) = (tmp_path / "out").iterdir()
    (phase,) = json.loads((run_dir / "run.json").read_text())["phases"]
    assert phase["errors"] == {"timeout": phase["completed"]} and phase["completed"] > 0
