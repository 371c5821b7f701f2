"""Stream readers (senders/streams.py) on streams in the exact OpenAI-compatible format.

The frames follow what servers send, checked against their sources: vLLM's
``vllm/entrypoints/openai/chat_completion/serving.py`` (a role-only first chunk
``delta: {"role": "assistant", "content": ""}``, one ``data: {json}\\n\\n`` per chunk, the usage
chunk with ``choices: []``, an error as ``data: {"error": {...}}`` then ``data: [DONE]``), the
OpenAI API reference for ``stream_options.include_usage`` (every other chunk carries
``"usage": null``) and openai-python's ``_streaming.py`` for the event-stream rules.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infbench.senders.streams import SseReader, TextStreamReader
from infbench.wire import ERROR_CODES, ERROR_KINDS

MS = 1_000_000
Api = Literal["openai-chat", "openai-completions"]
CHAT_HEAD = {
    "id": "chatcmpl-9a1b2c3d",
    "object": "chat.completion.chunk",
    "created": 1718000000,
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "system_fingerprint": "fp_44709d6fcb",
}
CMPL_HEAD = {"id": "cmpl-4e5f", "object": "text_completion", "created": 1718000000, "model": "m"}


def chat(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**CHAT_HEAD, "choices": [choice], "usage": usage}


def cmpl(text: str, finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {**CMPL_HEAD, "choices": [choice]}


def usage_chunk(head: dict[str, Any], prompt: int, completion: int) -> dict[str, Any]:
    counts = {"prompt_tokens": prompt, "completion_tokens": completion}
    return {**head, "choices": [], "usage": {**counts, "total_tokens": prompt + completion}}


def event(payload: dict[str, Any] | str, eol: str = "\n") -> bytes:
    """One SSE event as servers write it: compact JSON (pydantic's model_dump_json)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}{eol}{eol}".encode()


DONE = event("[DONE]")
ROLE = event(chat({"role": "assistant", "content": ""}))
HELLO = event(chat({"content": "Hello"}))
WORLD = event(chat({"content": " world"}))
STOP = event(chat({}, finish="stop"))
USAGE = event(usage_chunk(CHAT_HEAD, 7, 2))
# A content event over several lines: a CRLF split between reads must not end it early.
MULTI = (
    b'event: message\nid: 9\ndata: {"choices":[{"index":0,\ndata: "delta":{"content":"Hi"}}]}\n\n'
)


def figures(reader: SseReader | TextStreamReader) -> dict[str, Any]:
    error = reader.end()
    return {
        "first": reader.first_token_ns,
        "last": reader.last_token_ns,
        "chunks": reader.chunks,
        "gaps": list(reader.gaps),
        "output_tokens": reader.output_tokens,
        "source": reader.tokens_source,
        "input_tokens": reader.input_tokens,
        "done": getattr(reader, "done", None),
        "error": error,
    }


def read(stream: bytes, api: Api = "openai-chat", now_ns: int = 5) -> dict[str, Any]:
    reader = SseReader(api)
    reader.feed(stream, now_ns)
    return figures(reader)


# --- tables ---------------------------------------------------------------------------------------

CASES: dict[str, tuple[Api, bytes, dict[str, Any]]] = {
    "chat with role-only first, finish-only, usage chunk": (
        "openai-chat",
        ROLE + HELLO + WORLD + STOP + USAGE + DONE,
        {"chunks": 2, "output_tokens": 2, "source": "usage", "input_tokens": 7, "error": None},
    ),
    "chat without usage counts chunks": (
        "openai-chat",
        ROLE + HELLO + event(chat({})) + WORLD + STOP + DONE,
        {"chunks": 2, "output_tokens": 2, "source": "chunks", "input_tokens": 0, "error": None},
    ),
    "completions": (
        "openai-completions",
        event(cmpl("Once"))
        + event(cmpl(""))
        + event(cmpl(" upon", "length"))
        + event(usage_chunk(CMPL_HEAD, 3, 2))
        + DONE,
        {"chunks": 2, "output_tokens": 2, "source": "usage", "input_tokens": 3, "error": None},
    ),
    "pings, event, id and retry fields": (
        "openai-chat",
        b": ping\n\n"
        + b"retry: 3000\n"
        + b"id: 1\nevent: message\n"
        + HELLO
        + b":\n\n"
        + b": ping - 2024-06-10 10:00:00\n\n"
        + WORLD
        + DONE,
        {"chunks": 2, "output_tokens": 2, "error": None},
    ),
    "multi-line data joined by LF": (
        "openai-chat",
        b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"Hi"}}]}\n\n' + DONE,
        {"chunks": 1, "error": None},
    ),
    "data without a space, and a bare data line": (
        "openai-chat",
        b'data:{"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata\n\n' + DONE,
        {"chunks": 1, "error": None},
    ),
    "continuous usage: the last one counts": (
        "openai-chat",
        event(chat({"content": "a"}, usage={"prompt_tokens": 4, "completion_tokens": 1}))
        + event(chat({"content": "bc"}, usage={"prompt_tokens": 4, "completion_tokens": 3}))
        + DONE,
        {"chunks": 2, "output_tokens": 3, "source": "usage", "input_tokens": 4},
    ),
    "vLLM usage chunk with choices null": (
        "openai-chat",
        HELLO + event({**CHAT_HEAD, "choices": None, "usage": {"completion_tokens": 9}}) + DONE,
        {"chunks": 1, "output_tokens": 9, "source": "usage", "error": None},
    ),
    "reasoning text is generated text": (
        "openai-chat",
        event(chat({"reasoning_content": "hmm"})) + event(chat({"reasoning": "so"})) + HELLO + DONE,
        {"chunks": 3, "error": None},
    ),
    "a finish_reason then the end of the body is complete without [DONE]": (
        "openai-chat",
        ROLE + HELLO + WORLD + STOP + USAGE,
        {"chunks": 2, "output_tokens": 2, "done": False, "error": None},
    ),
    "neither [DONE] nor a finish_reason is reset": (
        "openai-chat",
        ROLE + HELLO + WORLD + USAGE,
        {"chunks": 2, "output_tokens": 2, "done": False, "error": "reset"},
    ),
    "a finish_reason then a cut inside a frame is reset": (
        "openai-chat",
        ROLE + HELLO + STOP + USAGE[:30],
        {"chunks": 1, "done": False, "error": "reset"},
    ),
    "cut inside a frame is reset": (
        "openai-chat",
        ROLE + HELLO + WORLD[:40],
        {"chunks": 1, "done": False, "error": "reset"},
    ),
    "[DONE] without its blank line is reset": (
        "openai-chat",
        HELLO + b"data: [DONE]\n",
        {"chunks": 1, "done": False, "error": "reset"},
    ),
    "vLLM error event then [DONE]": (
        "openai-chat",
        ROLE
        + HELLO
        + event({"error": {"message": "boom", "type": "InternalServerError", "code": 500}})
        + DONE,
        {"chunks": 1, "done": True, "error": "stream_error"},
    ),
    "bare vLLM error object": (
        "openai-chat",
        event({"object": "error", "message": "x", "type": "BadRequestError", "code": 400}) + DONE,
        {"chunks": 0, "error": "stream_error"},
    ),
    "event: error field": (
        "openai-chat",
        b'event: error\ndata: {"message":"overloaded"}\n\n' + DONE,
        {"error": "stream_error"},
    ),
    "null error is no error": (
        "openai-chat",
        event({**chat({"content": "a"}), "error": None}) + DONE,
        {"chunks": 1, "error": None},
    ),
    "malformed JSON is protocol, later chunks still counted": (
        "openai-chat",
        HELLO + b'data: {"choices":[{"delta":\n\n' + WORLD + DONE,
        {"chunks": 2, "done": True, "error": "protocol"},
    ),
    "a JSON list is protocol": ("openai-chat", b"data: [1, 2]\n\n" + DONE, {"error": "protocol"}),
    "non-text content is protocol": (
        "openai-chat",
        event(chat({"content": 5})) + DONE,
        {"chunks": 0, "error": "protocol"},
    ),
    "invalid UTF-8 is protocol": (
        "openai-chat",
        b"data: \xff\xfe\n\n" + DONE,
        {"error": "protocol"},
    ),
    "first error wins": (
        "openai-chat",
        b"data: nope\n\n" + event({"error": {"message": "later"}}),
        {"error": "protocol"},
    ),
    "empty stream is reset": ("openai-chat", b"", {"chunks": 0, "first": 0, "error": "reset"}),
}


@pytest.mark.parametrize(("api", "stream", "expected"), CASES.values(), ids=CASES.keys())
def test_table(api: Api, stream: bytes, expected: dict[str, Any]) -> None:
    got = read(stream, api)
    assert {key: got[key] for key in expected} == expected


@pytest.mark.parametrize("eol", ["\r\n", "\r"])
def test_line_endings_read_alike(eol: str) -> None:
    base = b": ping\n\n" + ROLE + HELLO + MULTI + WORLD + STOP + USAGE + DONE
    assert read(base.replace(b"\n", eol.encode())) == read(base)


def test_split_at_every_byte_gives_the_same_result() -> None:
    crlf = (MULTI + WORLD).replace(b"\n", b"\r\n")
    stream = ROLE + b": ping\r\n\r\n" + HELLO + crlf + MULTI.replace(b"\n", b"\r") + USAGE + DONE
    whole = read(stream)
    for cut in range(len(stream) + 1):
        reader = SseReader("openai-chat")
        reader.feed(stream[:cut], 5)
        reader.feed(stream[cut:], 5)
        assert figures(reader) == whole, cut
    one_by_one = SseReader("openai-chat")
    for byte in range(len(stream)):
        one_by_one.feed(stream[byte : byte + 1], 5)
    assert figures(one_by_one) == whole


# --- properties -----------------------------------------------------------------------------------

PIECES = [ROLE, b": ping\n\n", HELLO, WORLD, MULTI, event(chat({})), STOP, b"id: 3\n", USAGE, DONE]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES[:-1]), max_size=12),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
def test_any_split_stamps_each_event_at_the_read_that_completes_it(
    events: list[bytes], eol: str, cuts: list[int]
) -> None:
    """Figures depend only on where each event ends, never on how reads split the bytes."""
    parts = [part.replace(b"\n", eol.encode()) for part in [*events, DONE]]
    stream = b"".join(parts)
    bounds = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    reads = [(stream[a:b], (i + 1) * MS) for i, (a, b) in enumerate(pairwise(bounds))]
    reader = SseReader("openai-chat")
    for data, now in reads:
        reader.feed(data, now)
    # Expected: a content event is stamped with the read holding its blank line's first byte.
    stamps, offset = [], 0
    for original, part in zip([*events, DONE], parts, strict=True):
        offset += len(part)
        if original in (HELLO, WORLD, MULTI):
            end = offset - len(eol)
            stamps.append(next(now for i, (_, now) in enumerate(reads) if end < bounds[i + 1]))
    assert reader.end() is None and reader.done
    assert reader.chunks == len(stamps)
    assert reader.first_token_ns == (stamps[0] if stamps else 0)
    assert reader.last_token_ns == (stamps[-1] if stamps else 0)
    assert list(reader.gaps) == [b - a for a, b in pairwise(stamps)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_garbage_never_raises(garbage: bytes, cuts: list[int]) -> None:
    reader = SseReader("openai-chat")
    bounds = sorted({min(cut, len(garbage)) for cut in cuts} | {0, len(garbage)})
    for a, b in pairwise(bounds):
        reader.feed(garbage[a:b], 1)
    assert reader.end() in (None, "protocol", "reset", "stream_error")


# --- the DESIGN §5b case --------------------------------------------------------------------------


def test_two_tokens_every_20ms_after_60ms_ttft_with_role_chunk_pings_and_split_frames() -> None:
    """Sent at 1 ms; role-only chunk at 10 ms; 5 chunks of 2 tokens at 60, 80, …, 140 ms,
    each frame split in two reads (the first half 3 ms early); pings in between; usage last."""
    reads: list[tuple[bytes, int]] = [(ROLE, 10 * MS), (b": ping\n\n", 30 * MS)]
    for i in range(5):
        frame, at = event(chat({"content": f" t{2 * i} t{2 * i + 1}"})), (60 + 20 * i) * MS
        reads += [(frame[:50], at - 3 * MS), (frame[50:], at), (b": ping\n\n", at + MS)]
    reads += [(STOP + event(usage_chunk(CHAT_HEAD, 12, 10)), 141 * MS), (DONE, 141 * MS)]
    reader = SseReader("openai-chat")
    for data, now in reads:
        reader.feed(data, now)
    assert reader.end() is None
    assert (reader.chunks, reader.output_tokens, reader.tokens_source) == (5, 10, "usage")
    assert reader.input_tokens == 12
    assert list(reader.gaps) == [20 * MS] * 4  # ITL
    assert (reader.first_token_ns, reader.last_token_ns) == (60 * MS, 140 * MS)  # TTFT, TPOT's span


# --- tokens, text streams ---------------------------------------------------


def test_tokenizer_counts_the_whole_text_when_no_usage_came() -> None:
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return len(text.split())

    reader = SseReader("openai-chat", count_tokens=count)
    reader.feed(ROLE + HELLO + WORLD + STOP + DONE, 1)
    assert reader.end() is None
    assert (reader.output_tokens, reader.tokens_source) == (2, "tokenizer")
    # every chunk after the first is counted for its gap per token; the total on the whole text
    assert seen == [" world", "Hello world"] and list(reader.token_gaps) == [0]
    with_usage = SseReader("openai-chat", count_tokens=count)
    with_usage.feed(HELLO + WORLD + USAGE + DONE, 1)
    assert (with_usage.output_tokens, with_usage.tokens_source) == (2, "usage")


def test_the_token_audit_counts_the_kept_text_only_where_usage_came_too() -> None:
    """tokenizer_tokens: the tokenizer beside usage (usage says 5, the text holds 2 words);
    -1 without a tokenizer or without usage, where there is nothing to audit."""
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return len(text.split())

    audited = SseReader("openai-chat", count_tokens=count)
    audited.feed(HELLO + WORLD + event(usage_chunk(CHAT_HEAD, 7, 5)) + DONE, 1)
    assert audited.end() is None
    assert (audited.output_tokens, audited.tokenizer_tokens) == (5, 2)
    assert seen[-1] == "Hello world"  # the whole text once, as without usage
    plain = SseReader("openai-chat")
    plain.feed(HELLO + WORLD + USAGE + DONE, 1)
    no_usage = SseReader("openai-chat", count_tokens=count)
    no_usage.feed(HELLO + WORLD + STOP + DONE, 1)
    text = TextStreamReader(count_tokens=count)
    text.feed(b"Hello world", 1)
    assert plain.tokenizer_tokens == no_usage.tokenizer_tokens == text.tokenizer_tokens == -1


def test_text_stream_stamps_every_non_empty_piece() -> None:
    reader = TextStreamReader()
    for data, now in [(b"Hel", 10), (b"", 15), (b"lo", 30), (b" w\xc3", 45), (b"\xa9", 50)]:
        reader.feed(data, now)
    got = figures(reader)
    assert got == {
        "first": 10, "last": 50, "chunks": 4, "gaps": [20, 15, 5], "output_tokens": 4,
        "source": "chunks", "input_tokens": 0, "done": None, "error": None,
    }  # fmt: skip
    counted = TextStreamReader(count_tokens=lambda text: len(text))
    for data in (b"Hel", b"lo w\xc3", b"\xa9"):  # é split between two pieces
        counted.feed(data, 1)
    assert (counted.output_tokens, counted.tokens_source) == (len("Hello wé"), "tokenizer")


def test_stream_error_is_appended_after_the_existing_kinds() -> None:
    assert ERROR_KINDS[:8] == (
        "timeout", "connect", "reset", "protocol", "http_4xx", "http_5xx", "too_large", "dropped"
    )  # fmt: skip
    assert ERROR_KINDS[-1] == "stream_error" and ERROR_CODES["stream_error"] == len(ERROR_KINDS)
