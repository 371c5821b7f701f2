"""A BentoML service that really generates, token by token, with a tiny GPT on the CPU.

The model (``gpt_model.py``) is a GPT-2-style decoder with seeded random weights and a KV
cache: the prompt is one prefill pass (TTFT grows with its length), then each output token is
one decode step over the cache. Its words are gibberish; its costs are a real LLM's in
miniature. Nothing is downloaded. Needs torch (the ``study`` extra); nothing else in infbench
imports it.

Endpoints, the same as ``llm_stream``'s (``../llm_stream/openai_api.py`` has the format):
  POST /v1/chat/completions, POST /v1/completions, GET /v1/models   (OpenAI, SSE when streamed)
  POST /generate   {"prompt": "...", "max_tokens": 32} -> the text, one token per chunk (raw
                   text under BentoML's ``text/event-stream`` label)

Tokens are words (one per whitespace-separated word, ``WordTokenizer``), so usage's
``prompt_tokens`` is the prompt's word count (chat: all messages' text, no template) and the
output's word count is ``completion_tokens``. No end-of-text token is ever sampled: a request
gets ``max_tokens`` tokens (else ``LLM_GPT_OUTPUT_TOKENS``) and ``finish_reason: "length"``.
A prompt longer than the context keeps its last words.

One decode thread per worker runs every model call, so concurrent requests take turns step
by step: time per output token grows with the number of streams, as on a server without
batching. Knobs (a scenario's ``target.env``):

    LLM_GPT_LAYERS, LLM_GPT_HIDDEN, LLM_GPT_HEADS   the shape (default 4, 256, 4: ~4.5 M
                                      parameters, a few ms per token on one core)
    LLM_GPT_CONTEXT                   positions, prompt plus output (default 1024)
    LLM_GPT_OUTPUT_TOKENS             output length without max_tokens (default 64)
    LLM_GPT_THREADS                   torch intra-op threads (default 1: the load generator
                                      shares the machine)
    LLM_GPT_SEED                      weights and sampling (default 0)
    LLM_GPT_MODEL                     the model name answered when a request names none
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import bentoml
import torch
from gpt_model import BOS, Cache, Shape, WordTokenizer, build, parameters, vocabulary
from pydantic import Field

# One OpenAI wire format for both bundled LLM services: it lives beside llm_stream.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm_stream"))
from openai_api import Piece, make_app

VOCAB = 4096


@dataclass(frozen=True)
class Settings:
    shape: Shape
    output_tokens: int
    threads: int
    seed: int
    model: str

    @classmethod
    def from_env(cls) -> Settings:
        def number(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        shape = Shape(
            layers=number("LLM_GPT_LAYERS", 4),
            hidden=number("LLM_GPT_HIDDEN", 256),
            heads=number("LLM_GPT_HEADS", 4),
            vocab=VOCAB,
            context=number("LLM_GPT_CONTEXT", 1024),
        )
        if shape.hidden % shape.heads or min(shape.layers, shape.heads) < 1 or shape.context < 2:
            raise ValueError("LLM_GPT_HIDDEN must be a multiple of LLM_GPT_HEADS; sizes >= 1")
        return cls(
            shape=shape,
            output_tokens=number("LLM_GPT_OUTPUT_TOKENS", 64),
            threads=number("LLM_GPT_THREADS", 1),
            seed=number("LLM_GPT_SEED", 0),
            model=os.environ.get("LLM_GPT_MODEL", "infbench-tiny-gpt"),
        )


class GptTokens:
    """The TokenSource of the OpenAI API: sampled tokens of the tiny GPT."""

    def __init__(self, settings: Settings) -> None:
        torch.set_num_threads(settings.threads)
        self.settings = settings
        self.model = settings.model
        self.max_tokens_limit = settings.shape.context - 1  # room for at least BOS
        self.tokenizer = WordTokenizer(vocabulary(VOCAB))
        self.gpt = build(settings.shape, settings.seed)
        # Model calls never run on the event loop (it must keep writing other streams) and
        # never two at once (they would only fight over the same cores).
        self.decoder = ThreadPoolExecutor(1, thread_name_prefix="decode")
        print(f"tiny GPT: {parameters(self.gpt) / 1e6:.1f} M parameters, {settings.shape}")

    def count(self, text: str) -> int:
        return len(text.split())

    @torch.inference_mode()
    def step(self, ids: list[int], cache: Cache | None, rng: torch.Generator) -> tuple[int, Cache]:
        logits, cache = self.gpt(torch.tensor([ids]), cache)
        logits[0, BOS] = -torch.inf  # never end early: streams run to max_tokens
        token = torch.multinomial(torch.softmax(logits[0], dim=-1), 1, generator=rng)
        return int(token), cache

    async def stream(self, prompt: str, max_tokens: int | None) -> AsyncIterator[Piece]:
        total = max_tokens or self.settings.output_tokens
        room = self.settings.shape.context - total - 1
        ids = [BOS, *self.tokenizer.encode(prompt)[-room:]] if room > 0 else [BOS]
        rng = torch.Generator().manual_seed(self.settings.seed)
        loop = asyncio.get_running_loop()
        token, cache = await loop.run_in_executor(self.decoder, self.step, ids, None, rng)
        for i in range(total):
            text = ("" if i == 0 else " ") + self.tokenizer.decode(token)
            yield Piece(text, 1, "length" if i == total - 1 else None)
            if i < total - 1:
                token, cache = await loop.run_in_executor(
                    self.decoder, self.step, [token], cache, rng
                )


def _source() -> GptTokens:
    service: LlmGpt = bentoml.get_current_service()  # this worker's instance
    return service.source


SETTINGS = Settings.from_env()
V1 = make_app(_source)
# Checked by BentoML before the stream starts, so a bad value is a 400, not a cut stream.
MaxTokens = Annotated[int, Field(ge=1, le=SETTINGS.shape.context - 1)]


@bentoml.asgi_app(V1, path="/v1")
@bentoml.service
class LlmGpt:
    def __init__(self) -> None:
        self.source = GptTokens(SETTINGS)
        self._warm_up()

    def _warm_up(self) -> None:
        # The first calls allocate; keep them out of the first request's TTFT.
        cache = None
        rng = torch.Generator().manual_seed(0)
        token, cache = self.source.step([BOS, 1, 2, 3], cache, rng)
        for _ in range(3):
            token, cache = self.source.step([token], cache, rng)

    @bentoml.api
    async def generate(
        self, prompt: str = "", max_tokens: MaxTokens | None = None
    ) -> AsyncGenerator[str, None]:
        """The native text stream: one decoded token per chunk."""
        async for piece in self.source.stream(prompt, max_tokens):
            yield piece.text
