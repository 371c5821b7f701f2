"""The OpenAI-compatible HTTP API shared by the bundled LLM services (llm_stream, llm_gpt).

A Starlette app (BentoML mounts it at ``/v1``) serving ``POST /v1/chat/completions``,
``POST /v1/completions`` and ``GET /v1/models`` over any ``TokenSource``, so the fake and the
real model stream byte-for-byte the same framing. The format follows OpenAI's API reference
and openai-python's ``ChatCompletionChunk`` / ``ChatCompletionStreamOptionsParam`` types, as
vLLM's server also emits it. With ``stream: true`` the answer is ``text/event-stream``:

    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"m",
           "choices":[{"index":0,"delta":{"role":"assistant","content":""},
                       "logprobs":null,"finish_reason":null}]}        (chat only, sent at once)
    data: {… "choices":[{"index":0,"delta":{"content":"word"},"logprobs":null,
                         "finish_reason":null}]}                      (one per chunk of tokens)
    data: {… "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}
    data: {… "choices":[],"usage":{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…}}
    data: [DONE]

Completions chunks have ``"object":"text_completion"`` and ``choices[0].text`` instead of a
delta, and no role chunk. The usage chunk comes only with ``stream_options.include_usage``;
then, as OpenAI documents, every other chunk carries ``"usage":null``. ``: keep-alive``
comment lines are written while a chunk is overdue when the app is made with ``ping_s``.
With ``stream`` false the whole ``chat.completion`` / ``text_completion`` object is answered.

The role chunk is written as soon as the request is accepted, before the first token exists,
so a client that took it for the first token would report a TTFT of about zero: it carries
``content: ""``, which OpenAI and vLLM send too, and counts as no token (DESIGN §5b).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["BadRequest", "Piece", "TokenSource", "make_app"]


@dataclass(frozen=True)
class Piece:
    """Generated text holding ``tokens`` output tokens; the last one says why it stopped."""

    text: str
    tokens: int
    finish_reason: str | None = None


class TokenSource(Protocol):
    """What a service plugs in: a model name, a prompt token count, and timed output."""

    model: str
    max_tokens_limit: int  # the most output tokens one request may ask for

    def count(self, text: str) -> int: ...

    def stream(self, prompt: str, max_tokens: int | None) -> AsyncIterator[Piece]: ...


class BadRequest(Exception):
    """A request the API refuses with 400 and OpenAI's error body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Ask:
    """One parsed request, chat or completions alike."""

    chat: bool
    model: str
    prompt: str
    max_tokens: int | None
    stream: bool
    include_usage: bool


def make_app(source_of: Callable[[], TokenSource], ping_s: float = 0.0) -> Starlette:
    """The ``/v1`` app; ``source_of`` is called per request, so it may return the serving
    worker's own model (``bentoml.get_current_service()``)."""

    async def chat(request: Request) -> Response:
        return await _answer(request, True, source_of(), ping_s)

    async def completions(request: Request) -> Response:
        return await _answer(request, False, source_of(), ping_s)

    async def models(request: Request) -> Response:
        card = {"id": source_of().model, "object": "model", "created": 0, "owned_by": "infbench"}
        return JSONResponse({"object": "list", "data": [card]})

    return Starlette(
        routes=[
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/completions", completions, methods=["POST"]),
            Route("/models", models, methods=["GET"]),
        ]
    )


async def _answer(request: Request, chat: bool, source: TokenSource, ping_s: float) -> Response:
    try:
        body = json.loads(await request.body())
        ask = parse(body, chat, source)
    except json.JSONDecodeError as exc:
        return _error(f"the body is not valid JSON: {exc}", None)
    except BadRequest as exc:
        return _error(str(exc), exc.param)
    if ask.stream:
        return StreamingResponse(
            events(ask, source, ping_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return JSONResponse(await complete(ask, source))


def _error(message: str, param: str | None) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return JSONResponse({"error": error}, status_code=400)


# --- parsing -------------------------------------------------------------------------------------


def parse(body: Any, chat: bool, source: TokenSource) -> Ask:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    texts = _message_texts(body.get("messages")) if chat else _prompt_texts(body.get("prompt"))
    key = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    max_tokens = body.get(key)
    if max_tokens is not None and (
        type(max_tokens) is not int or not 1 <= max_tokens <= source.max_tokens_limit
    ):
        raise BadRequest(f"{key} must be an integer in 1..{source.max_tokens_limit}", key)
    if body.get("n", 1) not in (None, 1):
        raise BadRequest("only n=1 is supported", "n")
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise BadRequest("stream must be a boolean and stream_options an object", "stream")
    model = body.get("model") or source.model
    return Ask(
        chat=chat,
        model=str(model),
        prompt="\n".join(texts),
        max_tokens=max_tokens,
        stream=stream,
        include_usage=stream and options.get("include_usage") is True,
    )


def _message_texts(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    texts = []
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise BadRequest("each message must be an object with a role", "messages")
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):  # content parts: only the text ones have tokens here
            texts += [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return texts


def _prompt_texts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt
    raise BadRequest("prompt must be a string (or a list of one string)", "prompt")


# --- answers -------------------------------------------------------------------------------------


def _head(ask: Ask, streamed: bool) -> dict[str, Any]:
    if ask.chat:
        kind, prefix = ("chat.completion.chunk" if streamed else "chat.completion"), "chatcmpl-"
    else:
        kind, prefix = "text_completion", "cmpl-"
    return {"id": prefix + uuid.uuid4().hex, "object": kind, "created": int(time.time()),
            "model": ask.model}  # fmt: skip


def _choice(ask: Ask, text: str | None, finish_reason: str | None) -> dict[str, Any]:
    """A streamed choice: a delta (chat) or text (completions). ``text`` None = the role."""
    if not ask.chat:
        payload: dict[str, Any] = {"text": text or ""}
    elif text is None:
        payload = {"delta": {"role": "assistant", "content": ""}}
    else:
        payload = {"delta": {"content": text} if text else {}}
    return {"index": 0, **payload, "logprobs": None, "finish_reason": finish_reason}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _data(payload: dict[str, Any]) -> str:
    return "data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False) + "\n\n"


async def events(ask: Ask, source: TokenSource, ping_s: float) -> AsyncIterator[str]:
    """The SSE frames of one streamed answer, each written as soon as it exists."""
    head = _head(ask, streamed=True)
    tail: dict[str, Any] = {"usage": None} if ask.include_usage else {}
    if ask.chat:
        yield _data({**head, "choices": [_choice(ask, None, None)], **tail})
    tokens, finish = 0, "stop"
    async for piece in _with_pings(source.stream(ask.prompt, ask.max_tokens), ping_s):
        if piece is None:
            yield ": keep-alive\n\n"
            continue
        tokens += piece.tokens
        finish = piece.finish_reason or finish
        if piece.text:
            yield _data({**head, "choices": [_choice(ask, piece.text, None)], **tail})
    yield _data({**head, "choices": [_choice(ask, "", finish)], **tail})
    if ask.include_usage:
        yield _data({**head, "choices": [], "usage": _usage(source.count(ask.prompt), tokens)})
    yield "data: [DONE]\n\n"


async def complete(ask: Ask, source: TokenSource) -> dict[str, Any]:
    """The non-streamed answer: the same pieces, at the same pace, sent as one object."""
    texts, tokens, finish = [], 0, "stop"
    async for piece in source.stream(ask.prompt, ask.max_tokens):
        texts.append(piece.text)
        tokens += piece.tokens
        finish = piece.finish_reason or finish
    text = "".join(texts)
    content = {"message": {"role": "assistant", "content": text}} if ask.chat else {"text": text}
    choice = {"index": 0, **content, "logprobs": None, "finish_reason": finish}
    usage = _usage(source.count(ask.prompt), tokens)
    return {**_head(ask, streamed=False), "choices": [choice], "usage": usage}


async def _with_pings(pieces: AsyncIterator[Piece], ping_s: float) -> AsyncIterator[Piece | None]:
    """``pieces`` as they come, with None whenever ``ping_s`` passed without one (0: never)."""
    if ping_s <= 0:
        async for piece in pieces:
            yield piece
        return
    pending: asyncio.Future[Piece] = asyncio.ensure_future(anext(pieces))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=ping_s)
            if not done:
                yield None
                continue
            try:
                piece = pending.result()
            except StopAsyncIteration:
                return
            yield piece
            pending = asyncio.ensure_future(anext(pieces))
    finally:
        pending.cancel()  # the client went away mid-stream: stop generating
