"""Chat files (ShareGPT, OpenAI messages, turns) as datasets and as conversations."""

from __future__ import annotations

import io
import json
import pathlib
from typing import Any

import pytest
from rich.console import Console

from infbench.commands.validate import validate_scenario
from infbench.errors import InputError
from infbench.scenario.request import Dataset
from infbench.workload.chat_files import Turn, read_conversations
from infbench.workload.requests import load_rows

SHAREGPT = [
    {"id": "a", "conversations": [{"from": "human", "value": "one two three"},
                                  {"from": "gpt", "value": "answer a"},
                                  {"from": "human", "value": "and then"}]},
    {"id": "b", "conversations": [{"from": "gpt", "value": "hello"},
                                  {"from": "human", "value": "four five six seven eight"}]},
    {"id": "c", "conversations": [{"from": "system", "value": "be brief"},
                                  {"from": "human", "value": "nine"},
                                  {"from": "gpt", "value": "answer c"}]},
]  # fmt: skip


def write_json(path: pathlib.Path, items: list[Any]) -> pathlib.Path:
    path.write_text(json.dumps(items, indent=2))
    return path


def dataset(path: pathlib.Path, **extra: Any) -> Dataset:
    return Dataset.model_validate({"path": path.name, **extra})


def test_sharegpt_json_first_human_turn_is_the_prompt(tmp_path: pathlib.Path) -> None:
    write_json(tmp_path / "sg.json", SHAREGPT)
    rows = load_rows(dataset(tmp_path / "sg.json"), tmp_path)
    assert [r["prompt"] for r in rows] == ["one two three", "four five six seven eight", "nine"]
    assert rows[0]["answer"] == "answer a" and rows[1]["answer"] == ""


def test_sharegpt_jsonl_reads_the_same(tmp_path: pathlib.Path) -> None:
    (tmp_path / "sg.jsonl").write_text("".join(json.dumps(x) + "\n" for x in SHAREGPT))
    write_json(tmp_path / "sg.json", SHAREGPT)
    as_lines = load_rows(dataset(tmp_path / "sg.jsonl"), tmp_path)
    assert as_lines == load_rows(dataset(tmp_path / "sg.json"), tmp_path)


def test_length_filter_in_words_and_seeded_sample(tmp_path: pathlib.Path) -> None:
    write_json(tmp_path / "sg.json", SHAREGPT)
    kept = load_rows(dataset(tmp_path / "sg.json", lengths={"min": 2, "max": 5}), tmp_path)
    assert [r["prompt"] for r in kept] == ["one two three", "four five six seven eight"]
    picked = [load_rows(dataset(tmp_path / "sg.json", sample=2), tmp_path, seed=s) for s in (1, 1)]
    assert picked[0] == picked[1] and len(picked[0]) == 2
    draws = {
        tuple(r["prompt"] for r in load_rows(dataset(tmp_path / "sg.json", sample=2), tmp_path,
                                             seed=s))
        for s in range(12)
    }  # fmt: skip
    assert len(draws) > 1  # the seed picks


def test_a_filter_that_keeps_nothing_says_so(tmp_path: pathlib.Path) -> None:
    write_json(tmp_path / "sg.json", SHAREGPT)
    with pytest.raises(InputError, match=r"no row of .* has a prompt of 100..any words"):
        load_rows(dataset(tmp_path / "sg.json", lengths={"min": 100}), tmp_path)


def test_conversations_pair_turns_and_keep_lines(tmp_path: pathlib.Path) -> None:
    conversations = read_conversations(write_json(tmp_path / "sg.json", SHAREGPT))
    assert [c.line for c in conversations] == [2, 19, 32]  # where each "{" of the list stands
    assert conversations[0].turns == (Turn("one two three", "answer a"), Turn("and then", None))
    assert conversations[2].system == "be brief"


def test_messages_and_turns_rows(tmp_path: pathlib.Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                      {"role": "user", "content": "more"}]},
        {"turns": ["first", {"user": "second", "assistant": "ok"}]},
    ]  # fmt: skip
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, second = read_conversations(tmp_path / "c.jsonl")
    assert first.turns == (Turn("hi", "yo"), Turn("more", None))
    assert second.turns == (Turn("first", None), Turn("second", "ok"))


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"conversations": [{"from": "gpt", "value": "only me"}]}', "has no user turn"),
        ('{"conversations": [{"from": "robot", "value": "x"}]}', "unknown speaker 'robot'"),
        ('{"text": "hi"}', "no conversation in this row"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_conversations_name_file_and_line(
    tmp_path: pathlib.Path, line: str, words: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"turns": ["fine"]}\n\n' + line + "\n")
    with pytest.raises(InputError, match=words) as caught:
        read_conversations(path)
    assert caught.value.message.startswith(f"{path}:3:") and caught.value.exit_code == 2


def test_validate_reads_the_conversations_as_run_does(tmp_path: pathlib.Path) -> None:
    """A conversation with no user turn fails `infbench validate`, not only `run`."""
    (tmp_path / "chats.jsonl").write_text('{"turns": ["fine"]}\n{"messages": []}\n')
    scenario = tmp_path / "chat.yaml"
    scenario.write_text(
        "version: 1\nname: chat\ntarget: {kind: url, url: 'http://127.0.0.1:9'}\n"
        "request: {api: openai-chat, model: m, conversations: {path: chats.jsonl}}\n"
        "workload: {phases: [{name: p, duration: 1s, arrival: {process: poisson, rate: 1}}]}\n"
    )
    with pytest.raises(InputError, match="no user turn") as caught:
        validate_scenario(scenario, [], Console(file=io.StringIO()))
    assert caught.value.message.startswith(f"{tmp_path / 'chats.jsonl'}:2:")
