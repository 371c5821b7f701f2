"""Traces with lengths (DESIGN §5c): the formats, their sample files, slices, and the prompts
``request.prompts.from_trace`` builds from a trace's lengths and hash ids."""

from __future__ import annotations

import importlib.util
import json
import pathlib
from typing import Any

import numpy as np
import pytest

from infbench.errors import InputError
from infbench.scenario.model import Workload
from infbench.scenario.request import Request
from infbench.schedule.arrivals import build_schedule
from infbench.schedule.traces import load_trace_rows
from infbench.workload.sources import request_source

TRACES = pathlib.Path(__file__).parents[2] / "scenarios" / "llm" / "traces"
# The generic files name their columns; the presets know theirs.
GENERIC = {
    "time": "time_s",
    "input": "prompt_tokens",
    "output": "output_tokens",
    "hash_ids": "blocks",
}
SAMPLES: dict[str, dict[str, Any]] = {
    "sample.mooncake.jsonl": {"format": "mooncake"},
    "sample.azure.csv": {"format": "azure"},
    "sample.burstgpt.csv": {"format": "burstgpt"},
    "sample.csv": {"format": "csv", "columns": GENERIC},
    "sample.jsonl": {"format": "jsonl", "columns": GENERIC},
}
# The first four rows, written out by hand from the files.
FIRST_TIMES = [0.0, 0.183, 0.830, 1.314]
FIRST_INPUTS = [1554, 1903, 1551, 1112]
FIRST_OUTPUTS = [91, 32, 44, 106]
FIRST_IDS = [(0, 1, 6, 7), (4, 5, 8, 9), (2, 3, 10, 11), (0, 1, 12)]


def workload(arrival: dict[str, Any], duration: float | None = None, **extra: Any) -> Workload:
    phase = {"name": "replay", "arrival": arrival, **({"duration": duration} if duration else {})}
    return Workload.model_validate({"seed": 7, "phases": [phase], **extra})


def trace_arrival(name: str, **extra: Any) -> dict[str, Any]:
    return {"process": "trace", "path": str(TRACES / name), **SAMPLES[name], **extra}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_parses_to_the_hand_written_arrivals(name: str) -> None:
    plan = build_schedule(workload(trace_arrival(name)), TRACES).phases[0]
    assert plan.offsets is not None and plan.trace is not None
    assert plan.scheduled == 40
    np.testing.assert_allclose(plan.offsets[:4], FIRST_TIMES, atol=1e-6)
    assert plan.trace.inputs[:4].tolist() == FIRST_INPUTS
    assert plan.trace.outputs[:4].tolist() == FIRST_OUTPUTS
    has_ids = name not in ("sample.azure.csv", "sample.burstgpt.csv")
    assert list(plan.trace.hash_ids[:4]) == (FIRST_IDS if has_ids else [()] * 4)


def test_every_format_gives_the_same_arrivals() -> None:
    plans = [build_schedule(workload(trace_arrival(n)), TRACES).phases[0] for n in SAMPLES]
    for plan in plans[1:]:
        np.testing.assert_allclose(plan.offsets, plans[0].offsets, atol=1e-6)  # type: ignore[arg-type]
        assert plan.trace.inputs.tolist() == plans[0].trace.inputs.tolist()  # type: ignore[union-attr]
        assert plan.trace.outputs.tolist() == plans[0].trace.outputs.tolist()  # type: ignore[union-attr]


def test_the_samples_are_what_the_script_writes(tmp_path: pathlib.Path) -> None:
    spec = importlib.util.spec_from_file_location("make_samples", TRACES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_all(module.arrivals(), tmp_path)
    for name in SAMPLES:
        assert (tmp_path / name).read_bytes() == (TRACES / name).read_bytes(), name


def test_start_and_window_replay_a_slice_from_zero() -> None:
    arrival = trace_arrival("sample.mooncake.jsonl", start="0.5s", window="1s", scale=2)
    plan = build_schedule(workload(arrival), TRACES).phases[0]
    # rows at 0.830 and 1.314 s fall in [0.5, 1.5): shifted by 0.5 s, times 2
    np.testing.assert_allclose(plan.offsets, [0.66, 1.628], atol=1e-9)  # type: ignore[arg-type]
    assert plan.duration_s == pytest.approx(2.0)  # window × scale
    assert plan.trace is not None and plan.trace.lines.tolist() == [3, 4]


def test_empty_slice_is_an_error_naming_the_file() -> None:
    arrival = trace_arrival("sample.mooncake.jsonl", start="1h")
    with pytest.raises(InputError, match=r"sample\.mooncake\.jsonl: no rows in the slice"):
        build_schedule(workload(arrival), TRACES)


def test_unknown_format_names_the_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "t.parquet").write_text("")
    with pytest.raises(InputError, match="unknown trace format") as caught:
        load_trace_rows(tmp_path / "t.parquet")
    assert "arrival.format" in str(caught.value.hint)
    with pytest.raises(ValueError, match="format"):
        workload({"process": "trace", "path": "t.csv", "format": "parquet"})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,12,x\n", "not a token"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,-3,4\n", "not a token"),
        ("TIMESTAMP,Context,GeneratedTokens\n1,2,3\n", "no column 'ContextTokens'"),
    ],
)
def test_bad_length_cells_name_the_line(tmp_path: pathlib.Path, text: str, words: str) -> None:
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(InputError, match=words) as caught:
        load_trace_rows(tmp_path / "a.csv", "azure")
    assert f"{tmp_path / 'a.csv'}:" in caught.value.message


# --- prompts from the trace ----------------------------------------------------------------------


def trace_request(**extra: Any) -> Request:
    spec = {"api": "openai-completions", "model": "m", "prompts": {"from_trace": {}}, **extra}
    return Request.model_validate(spec)


def bodies(request: Request, arrival: dict[str, Any], base: pathlib.Path) -> list[dict[str, Any]]:
    schedule = build_schedule(workload(arrival), base)
    source = request_source(request, base, 7, schedule)
    return [json.loads(source.request(i).body or b"") for i in range(schedule.phases[0].scheduled)]


def test_from_trace_sends_each_rows_lengths() -> None:
    sent = bodies(trace_request(), trace_arrival("sample.mooncake.jsonl"), TRACES)
    rows = load_trace_rows(TRACES / "sample.mooncake.jsonl", "mooncake")
    assert [b["max_tokens"] for b in sent] == rows.outputs.tolist()
    assert [len(b["prompt"].split()) for b in sent] == rows.inputs.tolist()


def test_equal_hash_ids_give_byte_equal_prefixes() -> None:
    sent = bodies(trace_request(), trace_arrival("sample.mooncake.jsonl"), TRACES)
    first, fourth = sent[0]["prompt"], sent[3]["prompt"]  # both open with blocks 0, 1
    block = len(" ".join(first.split()[:512]))
    two_blocks = len(" ".join(first.split()[:1024]))
    assert first[:two_blocks] == fourth[:two_blocks]
    assert first.split()[1024:1030] != fourth.split()[1024:1030]  # ids 6 vs 12
    assert first[:block] != sent[1]["prompt"][:block]  # ids 0 vs 4


def test_a_partial_last_block_is_the_blocks_opening(tmp_path: pathlib.Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 700, "output_length": 5, "hash_ids": [9, 3]},
        {"timestamp": 5, "input_length": 1024, "output_length": 5, "hash_ids": [9, 3]},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    arrival = {"process": "trace", "path": "m.jsonl", "format": "mooncake"}
    short, full = (b["prompt"] for b in bodies(trace_request(), arrival, tmp_path))
    assert full.startswith(short) and len(short.split()) == 700


def test_same_file_and_seed_same_prompts_other_seed_other_words() -> None:
    arrival = trace_arrival("sample.burstgpt.csv")
    again = bodies(trace_request(), arrival, TRACES)
    assert again == bodies(trace_request(), arrival, TRACES)
    schedule = build_schedule(workload(arrival), TRACES)
    other = request_source(trace_request(), TRACES, 8, schedule).request(0).body
    assert json.loads(other or b"")["prompt"] != again[0]["prompt"]


def test_fixed_output_asks_for_exactly_the_traces_output() -> None:
    sent = bodies(trace_request(fixed_output=True), trace_arrival("sample.azure.csv"), TRACES)
    assert all(b["min_tokens"] == b["max_tokens"] and b["ignore_eos"] for b in sent)
    assert sent[0]["max_tokens"] == FIRST_OUTPUTS[0]


def test_a_row_without_the_output_length_is_an_error_naming_its_line(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "t.csv").write_text("t,in,out\n0,10,4\n1,12,\n")
    arrival = {"process": "trace", "path": "t.csv", "columns": {"time": "t", "input": "in",
               "output": "out"}}  # fmt: skip
    with pytest.raises(InputError, match=r"t\.csv:3: this row has no output length") as caught:
        bodies(trace_request(), arrival, tmp_path)
    assert caught.value.exit_code == 2 and "request.max_tokens" in str(caught.value.hint)
    sent = bodies(trace_request(max_tokens=9), arrival, tmp_path)  # the fallback
    assert [b["max_tokens"] for b in sent] == [4, 9]


def test_a_row_without_the_input_length_is_an_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "output_length": 3}\n')
    arrival = {"process": "trace", "path": "t.jsonl", "format": "mooncake", "window": "1s"}
    with pytest.raises(InputError, match=r"t\.jsonl:1: this row has no input length"):
        bodies(trace_request(), arrival, tmp_path)


def test_from_trace_without_a_trace_phase_is_an_error(tmp_path: pathlib.Path) -> None:
    schedule = build_schedule(workload({"process": "constant", "rate": 1}, 2), tmp_path)
    with pytest.raises(InputError, match="no phase replays one"):
        request_source(trace_request(), tmp_path, 7, schedule)
