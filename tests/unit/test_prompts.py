"""Prompt workloads: synthetic prompts (lengths, vocabulary, seeds), shared-prefix groups,
fixed output lengths, chat messages taken whole from a dataset row, and the scenario keys'
validation (every mistake names its key, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infbench.errors import InputError, ScenarioError
from infbench.scenario.request import Request, SyntheticPrompts, TokenCount
from infbench.scenario.source import load_scenario
from infbench.workload.prompts import VOCABULARY, draw_tokens, synthetic_rows
from infbench.workload.requests import RequestFactory


def spec(**keys: Any) -> SyntheticPrompts:
    return SyntheticPrompts.model_validate({"count": 50, "input_tokens": 20, **keys})


def bodies(tmp_path: Path, seed: int = 3, **request: Any) -> list[dict[str, Any]]:
    """The body of every distinct request (in row order when the order is sequential)."""
    factory = RequestFactory.from_scenario(Request.model_validate(request), tmp_path, seed)
    return [json.loads(factory.request(i).body or b"") for i in range(len(factory))]


# --- synthetic prompts ----------------------------------------------------------------------


def test_lengths_follow_the_distribution_in_words_of_the_vocabulary() -> None:
    tokens = {"mean": 100, "sd": 30, "min": 40, "max": 160}
    rows = synthetic_rows(spec(count=2000, input_tokens=tokens), seed=1)
    lengths = np.array([len(row["prompt"].split()) for row in rows])
    assert len(rows) == 2000 and lengths.min() >= 40 and lengths.max() <= 160
    assert abs(lengths.mean() - 100) < 2.5 and 26 < lengths.std() < 32  # clipping trims sd
    assert [row["input_tokens"] for row in rows] == lengths.tolist()
    assert {word for row in rows[:50] for word in row["prompt"].split()} <= set(VOCABULARY)
    assert all(row["text"] is row["prompt"] for row in rows)  # {{text}} templates work too


def test_a_fixed_length_and_the_same_seed_give_the_same_prompts() -> None:
    rows = synthetic_rows(spec(input_tokens=12), seed=7)
    assert {len(row["prompt"].split()) for row in rows} == {12}
    assert synthetic_rows(spec(input_tokens=12), seed=7) == rows
    other = synthetic_rows(spec(input_tokens=12), seed=8)
    assert all(a["prompt"] != b["prompt"] for a, b in zip(rows, other, strict=True))
    assert len({row["prompt"] for row in rows}) == 50  # distinct prompts


def test_shared_prefix_groups() -> None:
    shared = {"groups": 4, "prefix_tokens": 30}
    rows = synthetic_rows(spec(count=40, input_tokens=10, shared_prefix=shared), seed=2)
    words = [row["prompt"].split() for row in rows]
    assert {len(w) for w in words} == {40} and {row["input_tokens"] for row in rows} == {40}
    assert [row["group"] for row in rows[:6]] == [0, 1, 2, 3, 0, 1]  # prompt i: group i mod 4
    prefixes = {row["group"]: tuple(w[:30]) for row, w in zip(rows, words, strict=True)}
    for row, w in zip(rows, words, strict=True):
        assert tuple(w[:30]) == prefixes[row["group"]]  # the group's prefix, word for word
    assert len(set(prefixes.values())) == 4  # groups differ
    assert len({tuple(w[30:]) for w in words}) == 40  # then each prompt's own words
    more = synthetic_rows(spec(count=80, input_tokens=10, shared_prefix=shared), seed=2)
    assert {row["group"]: tuple(row["prompt"].split()[:30]) for row in more} == prefixes


def test_draw_tokens_without_spread_and_clipped() -> None:
    rng = np.random.default_rng(0)
    assert draw_tokens(TokenCount(mean=7.4), rng, 3).tolist() == [7, 7, 7]
    clipped = draw_tokens(TokenCount(mean=10, sd=100, min=5, max=12), rng, 500)
    assert clipped.min() == 5 and clipped.max() == 12


# --- bodies -----------------------------------------------------------------------------------

SYNTHETIC = {"synthetic": {"count": 5, "input_tokens": 8, "order": "sequential"}}


def test_synthetic_prompts_become_the_prompt_without_a_template(tmp_path: Path) -> None:
    rows = synthetic_rows(SyntheticPrompts.model_validate(SYNTHETIC["synthetic"]), seed=3)
    completions = bodies(tmp_path, api="openai-completions", model="m", prompts=SYNTHETIC)
    assert [b["prompt"] for b in completions] == [row["prompt"] for row in rows]
    chat = bodies(tmp_path, api="openai-chat", model="m", prompts=SYNTHETIC, prompt="Q: {{text}}")
    assert chat[0]["messages"] == [{"role": "user", "content": f"Q: {rows[0]['text']}"}]
    native = bodies(
        tmp_path, api="text-stream", path="/generate", prompts=SYNTHETIC,
        body={"prompt": "{{prompt}}", "n": "{{input_tokens}}"},
    )  # fmt: skip
    assert native[1] == {"prompt": rows[1]["prompt"], "n": 8}


def test_random_order_is_seeded(tmp_path: Path) -> None:
    request = Request.model_validate(
        {"api": "openai-completions", "model": "m", "prompts": {"synthetic": {"input_tokens": 4}}}
    )
    first = RequestFactory.from_scenario(request, tmp_path, seed=5)
    again = RequestFactory.from_scenario(request, tmp_path, seed=5)
    assert first.order == "random" and len(first) == 100
    sent = [first.request(i).body for i in range(300)]
    assert sent == [again.request(i).body for i in range(300)]
    assert len(set(sent)) > 80  # sampled from the 100 prompts, not cycled in order


def test_fixed_output_sets_min_tokens_to_each_rows_max_tokens(tmp_path: Path) -> None:
    drawn = bodies(
        tmp_path, api="openai-completions", model="m", prompts=SYNTHETIC, fixed_output=True,
        max_tokens={"mean": 64, "sd": 16, "min": 8, "max": 128},
    )  # fmt: skip
    assert len({b["max_tokens"] for b in drawn}) > 1
    assert all(b["min_tokens"] == b["max_tokens"] and b["ignore_eos"] is True for b in drawn)
    plain = bodies(tmp_path, api="openai-completions", model="m", prompts=SYNTHETIC, max_tokens=9)
    assert "min_tokens" not in plain[0] and "ignore_eos" not in plain[0]


def test_fixed_output_takes_a_rows_own_max_tokens_and_names_a_row_without(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"prompt": "a", "max_tokens": 5}\n{"prompt": "b"}\n')
    request = {"api": "openai-completions", "model": "m", "fixed_output": True,
               "dataset": {"path": "p.jsonl", "limit": 1}}  # fmt: skip
    (body,) = bodies(tmp_path, **request)
    assert body["prompt"] == "a" and body["max_tokens"] == body["min_tokens"] == 5
    request["dataset"] = {"path": "p.jsonl"}
    with pytest.raises(InputError, match=r"request\.fixed_output: row 2 of .*p\.jsonl has no"):
        bodies(tmp_path, **request)


def test_chat_messages_taken_whole_from_a_row(tmp_path: Path) -> None:
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    rows = [{"messages": conversation, "max_tokens": 12}, {"messages": conversation[1:]}]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, second = bodies(
        tmp_path, api="openai-chat", model="m", messages="{{ messages }}",
        dataset={"path": "chat.jsonl", "order": "sequential"}, max_tokens=64,
    )  # fmt: skip
    assert first["messages"] == conversation  # the row's list with its JSON type, not a string
    assert first["max_tokens"] == 12 and second["max_tokens"] == 64
    assert second["messages"] == conversation[1:]


def test_a_row_whose_messages_are_not_a_list_is_named(tmp_path: Path) -> None:
    (tmp_path / "chat.jsonl").write_text('{"messages": []}\n{"messages": "hello"}\n')
    with pytest.raises(InputError, match=r"request\.messages: row 2 of .*chat\.jsonl gives"):
        bodies(tmp_path, api="openai-chat", model="m", messages="{{messages}}",
               dataset={"path": "chat.jsonl"})  # fmt: skip


def test_a_datasets_prompt_field_is_the_default_prompt(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"prompt": "one"}\n')
    (body,) = bodies(tmp_path, api="openai-chat", model="m", dataset={"path": "p.jsonl"})
    assert body["messages"] == [{"role": "user", "content": "one"}]
    (tmp_path / "t.txt").write_text("one\n")
    with pytest.raises(InputError, match=r"request\.prompt \(unset.*no field 'prompt'") as info:
        bodies(tmp_path, api="openai-chat", model="m", dataset={"path": "t.txt"})
    assert "set request.prompt" in str(info.value)


def test_a_placeholder_synthetic_rows_lack_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"synthetic prompt 1 has no field 'query'.*prompt, text"):
        bodies(tmp_path, api="openai-completions", model="m", prompt="{{query}}",
               prompts=SYNTHETIC)  # fmt: skip


# --- the scenario keys ----------------------------------------------------------------------

BASE = """version: 1
name: p
target: {kind: url, url: "http://127.0.0.1:9"}
workload:
  phases: [{name: s, duration: 1s, arrival: {process: poisson, rate: 2}}]
request:
"""


def load(tmp_path: Path, request: str) -> Any:
    path = tmp_path / "s.yaml"
    path.write_text(BASE + request)
    return load_scenario(path)


def test_the_keys_load(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        "  api: openai-completions\n  model: m\n  max_tokens: 128\n  fixed_output: true\n"
        "  prompts:\n    synthetic:\n      count: 200\n"
        "      input_tokens: {mean: 512, sd: 128, min: 64, max: 1024}\n"
        "      shared_prefix: {groups: 4, prefix_tokens: 256}\n",
    )
    synthetic = loaded.scenario.request.prompts.synthetic
    assert synthetic.count == 200 and synthetic.shared_prefix.groups == 4
    assert loaded.stored["request"]["prompts"]["synthetic"]["input_tokens"]["mean"] == 512


CHAT = "  api: openai-chat\n  model: m\n"
SYN = CHAT + "  prompts:\n    synthetic: "


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        (SYN + "{count: 0, input_tokens: 5}\n",
         r"request\.prompts\.synthetic\.count: .*greater than or equal to 1"),
        (SYN + "{cuont: 3, input_tokens: 5}\n", r"request\.prompts\.synthetic\.cuont: unknown key"),
        (SYN + "{count: 3}\n", r"request\.prompts\.synthetic\.input_tokens: Field required"),
        (CHAT + "  prompts: {count: 3, input_tokens: 5}\n",
         r"request\.prompts\.count: unknown key"),
        (SYN + "{input_tokens: {mean: 0}}\n",
         r"request\.prompts\.synthetic\.input_tokens\.mean: .*greater than 0"),
        (SYN + "{input_tokens: 5, order: shuffled}\n",
         r"request\.prompts\.synthetic\.order: .*'random' or 'sequential'"),
        (SYN + "{count: 3, input_tokens: 5, shared_prefix: {groups: 4, prefix_tokens: 2}}\n",
         r"request\.prompts\.synthetic: shared_prefix\.groups \(4\) must be at most count"),
        (SYN + "{input_tokens: 5, shared_prefix: {groups: 1, prefix_tokens: 0}}\n",
         r"request\.prompts\.synthetic\.shared_prefix\.prefix_tokens: .*greater than or equal"),
        (SYN + "{count: 100000, input_tokens: 1000}\n",
         r"request\.prompts\.synthetic: .*100,000,000 words; at most 20,000,000"),
        (SYN + "{input_tokens: 5}\n  dataset: {path: d.jsonl}\n",
         r"request: rows come from `dataset` or from `prompts`"),
        (SYN + "{input_tokens: 5}\n  fixed_output: true\n",
         r"request: `fixed_output` needs `max_tokens`"),
        (CHAT + "  prompt: hi\n  max_tokens: 8\n  fixed_output: true\n"
         "  params: {min_tokens: 8, ignore_eos: true}\n",
         r"request: `fixed_output` sets ignore_eos and min_tokens itself: remove params"),
        (CHAT + "  prompt: hi\n  fixed_output: maybe\n", r"request\.fixed_output: .*valid boolean"),
        ("  api: text-stream\n  prompts: {synthetic: {input_tokens: 5}}\n",
         r"request: `prompts` fill placeholders of `body`"),
        (CHAT + "  messages: 'say {{text}}'\n",
         r"request\.messages: as a string, `messages` is one placeholder"),
        (CHAT, r"request: `api: openai-chat` needs `prompt` \(or `messages`\), or rows"),
    ],
)  # fmt: skip
def test_every_mistake_names_its_key(tmp_path: Path, request_text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as info:
        load(tmp_path, request_text)
    assert info.value.exit_code == 2 and "s.yaml:" in str(info.value)
