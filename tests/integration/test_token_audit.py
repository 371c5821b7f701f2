"""The token audit (DESIGN §5b) end to end: the server's usage against a local tokenizer.

The stream server sends 4 chunks of 3 words each, so a whitespace tokenizer counts 12 tokens
per answer; ``usage_offset`` makes the server's usage say 12 + offset. token_mismatch_pct is
100 × Σ|usage − tokenizer| / Σ usage over the answers counted both ways: 100 × 1 / 13 with an
offset of 1, whatever the number of answers.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infbench.cli import app
from streamserver import StreamServer

runner = CliRunner(env={"COLUMNS": "100"})
tokenizers = pytest.importorskip(
    "tokenizers", reason="request.tokenizer needs tokenizers: pip install -e '.[test]'"
)


def word_tokenizer(directory: Path) -> str:
    """A tokenizer.json that counts whitespace-separated words (every word unknown, one id)."""
    words = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    words.save(str(directory / "tokenizer.json"))
    return "tokenizer.json"


def audited_run(
    tmp_path: Path,
    usage_offset: int,
    tokenizer: bool = True,
    slo: str = "token_mismatch: 1%",
    processes: int = 1,
) -> tuple[int, str, dict[str, Any]]:
    """Exit code, console output and the only phase of run.json."""
    tokenizer_key = f", tokenizer: {word_tokenizer(tmp_path)}" if tokenizer else ""
    knobs = {"ttft_s": 0.01, "itl_s": 0.005, "chunks": 4, "tokens_per_chunk": 3}
    with StreamServer(**knobs, usage_offset=usage_offset) as server:
        path = tmp_path / "audit.yaml"
        path.write_text(
            f"""
version: 1
name: audit
target: {{kind: url, url: "{server.url}"}}
request: {{api: openai-chat, model: m, prompt: "hello", timeout: 5s{tokenizer_key}}}
client: {{sender: fast, connections: 4, processes: {processes}}}
workload:
  phases:
    - {{name: steady, duration: 1s, arrival: {{process: constant, rate: 6}}}}
slo: {{{slo}}}
"""
        )
        result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    (run_dir,) = (tmp_path / "out").iterdir()
    (phase,) = json.loads((run_dir / "run.json").read_text())["phases"]
    assert phase["ok"] > 0 and phase["tokens_source"] == "usage"
    return result.exit_code, result.output, phase


def ok_rows(tmp_path: Path) -> list[dict[str, str]]:
    """The rows of requests.csv.gz of the run audited_run made that succeeded."""
    (run_dir,) = (tmp_path / "out").iterdir()
    with gzip.open(run_dir / "requests.csv.gz", "rt", newline="") as handle:
        return [row for row in csv.DictReader(handle) if not row["error"]]


@pytest.mark.parametrize("processes", [1, 2])  # two: the sums merged across generator processes
def test_usage_one_token_over_is_a_mismatch_of_1_in_13_and_fails_the_slo(
    tmp_path: Path, processes: int
) -> None:
    code, output, phase = audited_run(tmp_path, usage_offset=1, processes=processes)
    assert phase["output_tokens"] == 13 * phase["ok"]  # the server's usage is what is reported
    assert phase["token_mismatch_pct"] == pytest.approx(100 / 13, abs=1e-4)
    assert code == 1, output
    assert "token_mismatch = 7.692%, required ≤ 1%: FAILED" in output
    assert "tok mismatch" in output  # the console's tokens table shows the figure
    rows = ok_rows(tmp_path)  # each answer's two counts, in its own row (merged across processes)
    assert len(rows) == phase["ok"]
    assert {(r["tokens_source"], r["output_tokens"], r["tokenizer_tokens"]) for r in rows} == {
        ("usage", "13", "12")
    }


def test_an_undercount_is_as_far_off_as_an_overcount(tmp_path: Path) -> None:
    _, _, phase = audited_run(tmp_path, usage_offset=-2, slo="ttft: 5s")
    assert phase["token_mismatch_pct"] == pytest.approx(100 * 2 / 10, abs=1e-4)


def test_counts_that_agree_pass_the_slo(tmp_path: Path) -> None:
    code, output, phase = audited_run(tmp_path, usage_offset=0)
    assert phase["token_mismatch_pct"] == 0.0
    assert code == 0, output  # the SLO held (an invalid run fails only with --strict)
    assert "FAILED" not in output


def test_without_a_tokenizer_there_is_no_figure(tmp_path: Path) -> None:
    code, output, phase = audited_run(tmp_path, usage_offset=1, tokenizer=False, slo="ttft: 5s")
    assert "token_mismatch_pct" not in phase  # absent, never 0
    assert code == 0 and "tok mismatch" not in output
    rows = ok_rows(tmp_path)  # usage alone: the tokenizer's cell is empty
    assert rows and {(r["tokens_source"], r["tokenizer_tokens"]) for r in rows} == {("usage", "")}


def test_the_threshold_is_a_percentage_and_a_bare_number_is_refused() -> None:
    from infbench.analysis.slo import parse_slo
    from infbench.errors import ScenarioError

    (rule,) = parse_slo({"token_mismatch": "1.5%"})
    assert rule.threshold == 1.5  # token_mismatch_pct is in percent
    with pytest.raises(ScenarioError, match=r"slo.token_mismatch: .*percentage such as 1%"):
        parse_slo({"token_mismatch": 0.01})
