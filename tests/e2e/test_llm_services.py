"""The bundled LLM services under a real ``bentoml serve``: OpenAI streaming format, usage,
and the timing knobs of llm_stream (lower bounds only: a shared machine may always be slower).

One server start per service; each test then sends a handful of short streams.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from infbench.scenario.model import BentomlTarget
from infbench.targets.factory import open_target

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TTFT_S, ITL_S, PING_S = 0.3, 0.04, 0.1
STREAM_ENV = {
    "LLM_STREAM_TTFT_MS": str(TTFT_S * 1000),
    "LLM_STREAM_ITL_MS": str(ITL_S * 1000),
    "LLM_STREAM_TOKENS_PER_CHUNK": "2",
    "LLM_STREAM_PING_MS": str(PING_S * 1000),
    "LLM_STREAM_OUTPUT_TOKENS": "8",
}
PROMPT = "Write a short poem about the sea"  # 7 words: 7 prompt tokens


@dataclass(frozen=True)
class Frame:
    at: float  # seconds from just before the request was sent
    text: str  # one SSE event, without its blank-line terminator


@contextmanager
def serve(tmp_path: Path, service: str, env: dict[str, str]) -> Iterator[httpx.Client]:
    spec = BentomlTarget(kind="bentoml", service=service, env=env)
    handle = open_target(spec, SCENARIOS, tmp_path / "server.log")
    info = handle.start()
    try:
        with httpx.Client(base_url=info.base_url, timeout=30) as client:
            yield client
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def llm_stream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("llm_stream")
    with serve(folder, "services/llm_stream:LlmStream", STREAM_ENV) as client:
        yield client


def read_events(client: httpx.Client, path: str, body: dict[str, Any]) -> list[Frame]:
    """The SSE events of one streamed answer, stamped as they arrive."""
    frames: list[Frame] = []
    buffer = ""
    started = time.perf_counter()
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        for text in response.iter_text():
            buffer += text
            *events, buffer = buffer.split("\n\n")
            frames += [Frame(time.perf_counter() - started, event) for event in events]
    assert buffer == "", "the stream ended inside an event"
    return frames


def check_openai_stream(
    frames: list[Frame], chat: bool, usage: bool, prompt_tokens: int, max_tokens: int
) -> tuple[str, list[Frame]]:
    """Asserts OpenAI's chunk sequence; returns the generated text and its content frames."""
    assert frames[-1].text == "data: [DONE]"
    data = [f for f in frames[:-1] if not f.text.startswith(":")]  # comments carry nothing
    assert all(f.text.startswith("data: ") and "\n" not in f.text for f in data)
    chunks = [json.loads(f.text.removeprefix("data: ")) for f in data]
    head = {k: chunks[0][k] for k in ("id", "object", "created", "model")}
    assert head["object"] == ("chat.completion.chunk" if chat else "text_completion")
    assert all({k: c[k] for k in head} == head for c in chunks)
    # With include_usage every chunk has "usage": null but the last, which has only usage.
    assert all(c.get("usage", "absent") == (None if usage else "absent") for c in chunks[:-1])
    if usage:
        last = chunks.pop()
        data.pop()
        assert last["choices"] == [] and last["usage"] == {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": max_tokens,
            "total_tokens": prompt_tokens + max_tokens,
        }
    choices = []
    for chunk in chunks:
        (choice,) = chunk["choices"]
        assert choice["index"] == 0 and choice["logprobs"] is None
        choices.append(choice)
    if chat:
        assert choices[0]["delta"] == {"role": "assistant", "content": ""}
        assert choices[0]["finish_reason"] is None
        choices, data = choices[1:], data[1:]
    final = choices.pop()
    data.pop()
    empty = {"delta": {}} if chat else {"text": ""}
    assert final == {"index": 0, **empty, "logprobs": None, "finish_reason": "length"}
    key = "delta" if chat else "text"
    assert all(c.keys() == {"index", key, "logprobs", "finish_reason"} for c in choices)
    assert all(c["finish_reason"] is None for c in choices)
    texts = [c["delta"]["content"] if chat else c["text"] for c in choices]
    assert texts and all(texts)
    assert not chat or all(c["delta"].keys() == {"content"} for c in choices)
    text = "".join(texts)
    assert len(text.split()) == max_tokens  # one word per token
    return text, data


def chat_body(max_tokens: int) -> dict[str, Any]:
    return {
        "model": "bench",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": PROMPT},
        ],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_llm_stream_chat_follows_openai_and_honours_ttft_itl_pings(
    llm_stream: httpx.Client,
) -> None:
    frames = read_events(llm_stream, "/v1/chat/completions", chat_body(max_tokens=10))
    text, content = check_openai_stream(
        frames, chat=True, usage=True, prompt_tokens=9, max_tokens=10
    )
    assert len(content) == 5  # two tokens a chunk
    role = frames[0]
    assert '"role":"assistant"' in role.text and role.at < content[0].at
    assert content[0].at >= TTFT_S  # never before the TTFT knob
    gaps = (content[-1].at - content[0].at) / (len(content) - 1)
    assert gaps >= 0.8 * ITL_S  # the mean gap; a single gap may shrink in transit
    pings = [f for f in frames if f.at < content[0].at and f.text == ": keep-alive"]
    assert len(pings) >= 2  # a 300 ms TTFT with a ping every 100 ms
    # Seeded: the same request gets the same words, streamed or not.
    body = {**chat_body(max_tokens=10), "stream": False}
    del body["stream_options"]
    answer = llm_stream.post("/v1/chat/completions", json=body).json()
    assert answer["object"] == "chat.completion" and answer["model"] == "bench"
    (choice,) = answer["choices"]
    assert choice["message"] == {"role": "assistant", "content": text}
    assert choice["finish_reason"] == "length"
    assert answer["usage"] == {"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19}


def test_llm_stream_completions_generate_and_errors(llm_stream: httpx.Client) -> None:
    body = {"prompt": PROMPT, "max_tokens": 4, "stream": True}
    frames = read_events(llm_stream, "/v1/completions", body)
    check_openai_stream(frames, chat=False, usage=False, prompt_tokens=7, max_tokens=4)
    # Without max_tokens: LLM_STREAM_OUTPUT_TOKENS (8 here) and finish_reason "stop".
    answer = llm_stream.post("/v1/completions", json={"prompt": "hi"}).json()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 1, "completion_tokens": 8, "total_tokens": 9}
    # The native endpoint: plain text chunks (BentoML labels any generator event-stream).
    started = time.perf_counter()
    arrivals, chunks = [], []
    with llm_stream.stream("POST", "/generate", json={"prompt": PROMPT, "max_tokens": 6}) as reply:
        assert reply.status_code == 200
        for chunk in reply.iter_text():
            arrivals.append(time.perf_counter() - started)
            chunks.append(chunk)
    assert arrivals[0] >= TTFT_S and len("".join(chunks).split()) == 6
    assert not any(chunk.startswith("data:") for chunk in chunks)
    refused = llm_stream.post("/v1/chat/completions", json={**chat_body(1), "max_tokens": 0})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "max_tokens"
    assert llm_stream.post("/generate", json={"prompt": "x", "max_tokens": 0}).status_code == 400
    assert llm_stream.get("/v1/models").json()["data"][0]["id"] == "infbench-stream"


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="llm_gpt needs torch (pip install -e '.[study]')",
)
def test_llm_gpt_generates_and_streams_openai_chunks(tmp_path: Path) -> None:
    env = {"LLM_GPT_LAYERS": "2", "LLM_GPT_HIDDEN": "128"}
    with serve(tmp_path, "services/llm_gpt:LlmGpt", env) as client:
        frames = read_events(client, "/v1/chat/completions", chat_body(max_tokens=24))
        text, content = check_openai_stream(
            frames, chat=True, usage=True, prompt_tokens=9, max_tokens=24
        )
        assert len(content) == 24  # one token a chunk
        assert content[0].at > frames[0].at  # role first, then prefill, then tokens
        # Seeded sampling: the same prompt gives the same tokens, whichever endpoint.
        prompt = "Be brief.\n" + PROMPT
        answer = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 24}).json()
        assert answer["choices"][0]["text"] == text
        reply = client.post("/generate", json={"prompt": prompt, "max_tokens": 24})
        assert reply.status_code == 200 and reply.text == text
        too_long = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 5000})
        assert too_long.status_code == 400
