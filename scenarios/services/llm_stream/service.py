"""A model-free BentoML service that streams like an LLM server, for fast and exact tests.

Endpoints (``openai_api.py`` describes the OpenAI format, chunk by chunk):
  POST /v1/chat/completions   OpenAI chat; ``stream: true`` answers Server-Sent Events
  POST /v1/completions        OpenAI completions, likewise
  GET  /v1/models             the one model name
  POST /generate              {"prompt": "...", "max_tokens": 64} -> the text, chunk by chunk
                              (a BentoML generator endpoint: raw text, no SSE framing, though
                              BentoML labels every generator ``text/event-stream``)

Output tokens are words drawn from a fixed vocabulary, one word per token, so the output's
whitespace split counts its tokens exactly; prompt tokens are the prompt's whitespace split
(chat: of all messages' text). A request asking for ``max_tokens`` gets exactly that many
tokens and ``finish_reason: "length"``; one that does not gets ``LLM_STREAM_OUTPUT_TOKENS``
and ``"stop"``.

Timing, from the environment (a scenario's ``target.env``); times in milliseconds:

    LLM_STREAM_TTFT_MS            wait before the first content chunk (default 50)
    LLM_STREAM_PREFILL_US_PER_TOKEN  further wait before it per prompt token, as a real
                                  server's prefill grows with the context (default 0): a
                                  conversation's later turns, sending the history, wait longer
    LLM_STREAM_ITL_MS             wait between content chunks (default 10)
    LLM_STREAM_JITTER_MS          each wait is moved by a uniform draw in ±jitter, never
                                  below 0, so the mean wait stays as set (default 0)
    LLM_STREAM_SEED               seeds the jitter and the words (default 0)
    LLM_STREAM_TOKENS_PER_CHUNK   tokens in one content chunk (default 1)
    LLM_STREAM_OUTPUT_TOKENS      output length without max_tokens (default 64)
    LLM_STREAM_MAX_TOKENS         the largest max_tokens accepted (default 4096)
    LLM_STREAM_PING_MS            write an SSE ``: keep-alive`` comment whenever a chunk is
                                  this overdue (default 0: never)
    LLM_STREAM_MODEL              the model name answered when a request names none
                                  (default infbench-stream)

Waits are asyncio sleeps (one worker holds thousands of streams) to deadlines counted from
the request's arrival: content chunk k is due at TTFT + k x ITL (each wait jittered), so the
mean gap is the ITL set, not ITL plus each sleep's overshoot; a chunk the event loop
delivered late is followed by a shorter gap, as when a real server's writes lag its tokens.
The random draws of a request are seeded by (seed, prompt, max_tokens): the same request
streams the same words at the same pace, whichever worker serves it, and the answer is
derived from the request, its history included (chat: every message's text is the prompt),
so a conversation whose turn sends other history gets other answers.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import bentoml
from openai_api import Piece, make_app
from pydantic import Field

WORDS = (  # noqa: SIM905 (a list literal of 57 words would take 57 lines)
    "the a model token stream server request answer fast slow batch queue latency "
    "time first next word chunk byte text load steady burst ramp wave cloud river stone "
    "light green blue quiet bright small large early late open close read write send "
    "keep wait count measure every some many few one two three four five more less"
).split()


def _env_ms(name: str, default: float) -> float:
    return float(os.environ.get(name, default)) / 1000.0


@dataclass(frozen=True)
class Timing:
    ttft_s: float
    prefill_s_per_token: float
    itl_s: float
    jitter_s: float
    tokens_per_chunk: int
    output_tokens: int
    max_tokens_limit: int
    seed: int

    @classmethod
    def from_env(cls) -> Timing:
        timing = cls(
            ttft_s=_env_ms("LLM_STREAM_TTFT_MS", 50),
            prefill_s_per_token=_env_ms("LLM_STREAM_PREFILL_US_PER_TOKEN", 0) / 1000.0,
            itl_s=_env_ms("LLM_STREAM_ITL_MS", 10),
            jitter_s=_env_ms("LLM_STREAM_JITTER_MS", 0),
            tokens_per_chunk=int(os.environ.get("LLM_STREAM_TOKENS_PER_CHUNK", "1")),
            output_tokens=int(os.environ.get("LLM_STREAM_OUTPUT_TOKENS", "64")),
            max_tokens_limit=int(os.environ.get("LLM_STREAM_MAX_TOKENS", "4096")),
            seed=int(os.environ.get("LLM_STREAM_SEED", "0")),
        )
        if min(timing.ttft_s, timing.itl_s, timing.jitter_s, timing.prefill_s_per_token) < 0:
            raise ValueError(
                "LLM_STREAM_TTFT_MS, _ITL_MS, _JITTER_MS and _PREFILL_US_PER_TOKEN must be >= 0"
            )
        if min(timing.tokens_per_chunk, timing.output_tokens, timing.max_tokens_limit) < 1:
            raise ValueError(
                "LLM_STREAM_TOKENS_PER_CHUNK, _OUTPUT_TOKENS, _MAX_TOKENS must be >= 1"
            )
        return timing


class FakeTokens:
    """A TokenSource whose only cost is waiting."""

    def __init__(self, timing: Timing, model: str) -> None:
        self.timing = timing
        self.model = model
        self.max_tokens_limit = timing.max_tokens_limit

    def count(self, text: str) -> int:
        return len(text.split())

    async def stream(self, prompt: str, max_tokens: int | None) -> AsyncIterator[Piece]:
        timing = self.timing
        total = max_tokens or timing.output_tokens
        finish = "length" if max_tokens else "stop"
        # A str seed is hashed with SHA-512 by random.Random: stable across processes.
        rng = random.Random(f"{timing.seed}\x00{max_tokens}\x00{prompt}")
        loop = asyncio.get_running_loop()
        due, wait = loop.time(), timing.ttft_s + timing.prefill_s_per_token * self.count(prompt)
        for start in range(0, total, timing.tokens_per_chunk):
            due += max(0.0, wait + rng.uniform(-1, 1) * timing.jitter_s)
            await asyncio.sleep(due - loop.time())  # a negative wait returns at once
            count = min(timing.tokens_per_chunk, total - start)
            words = [rng.choice(WORDS) for _ in range(count)]
            text = ("" if start == 0 else " ") + " ".join(words)
            yield Piece(text, count, finish if start + count == total else None)
            wait = timing.itl_s


SOURCE = FakeTokens(Timing.from_env(), os.environ.get("LLM_STREAM_MODEL", "infbench-stream"))
V1 = make_app(lambda: SOURCE, ping_s=_env_ms("LLM_STREAM_PING_MS", 0))
# Checked by BentoML before the stream starts, so a bad value is a 400, not a cut stream.
MaxTokens = Annotated[int, Field(ge=1, le=SOURCE.max_tokens_limit)]


@bentoml.asgi_app(V1, path="/v1")
@bentoml.service
class LlmStream:
    @bentoml.api
    async def generate(
        self, prompt: str = "", max_tokens: MaxTokens | None = None
    ) -> AsyncGenerator[str, None]:
        """The native text stream: the same tokens as the OpenAI API, as raw text chunks."""
        async for piece in SOURCE.stream(prompt, max_tokens):
            yield piece.text
