"""A fake OpenAI-compatible streaming server with knobs, for integration tests of DESIGN §5b.

Every POST is answered with server-sent events in the OpenAI chat format, over HTTP/1.1
chunked transfer encoding on a kept-alive connection: after ``ttft_s`` a role-only chunk and
the first content chunk, then a content chunk every ``itl_s``, each carrying
``tokens_per_chunk`` words; a ``finish_reason`` chunk, the usage chunk and ``[DONE]``. Knobs
add the pathologies a client must survive: ``ping`` comments between chunks, ``split`` frames
(each event written in two pieces, a moment apart), ``error_at`` (an error event instead of
that chunk), ``cut_at`` (the connection closed before that chunk) and ``stall_at`` (silence
from that chunk on). The end of a stream: ``finish`` (the ``finish_reason`` chunk) and ``done``
(``data: [DONE]``) can each be left out, the body still ending cleanly; ``runaway`` bytes
(one ``data: `` line that never ends, written in 64 KiB pieces) come after the first content
chunk. ``chunk_tokens`` gives each content chunk its own number of words (it overrides
``chunks`` and ``tokens_per_chunk``), and ``continuous_usage`` puts the running usage on every
content chunk, as vLLM's ``stream_options.continuous_usage_stats`` does. ``usage_offset`` adds
that many tokens to every usage's ``completion_tokens`` (a server whose count is off, for the
token audit).

    with StreamServer(ttft_s=0.06, itl_s=0.02, chunks=5, tokens_per_chunk=2) as srv:
        ... srv.url ...
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["LoopServer", "StreamKnobs", "StreamServer"]


@dataclass(frozen=True)
class StreamKnobs:
    ttft_s: float = 0.06
    itl_s: float = 0.02
    chunks: int = 5
    tokens_per_chunk: int = 2
    role_chunk: bool = True
    ping: bool = False
    split: bool = False
    usage: bool = True
    error_at: int | None = None
    cut_at: int | None = None
    stall_at: int | None = None
    prompt_tokens: int = 7
    finish: bool = True
    done: bool = True
    runaway: int = 0
    chunk_tokens: tuple[int, ...] = ()
    continuous_usage: bool = False
    usage_offset: int = 0

    @property
    def tokens(self) -> tuple[int, ...]:
        """Words (tokens) in each content chunk."""
        return self.chunk_tokens or (self.tokens_per_chunk,) * self.chunks


def _event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _event({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})


class LoopServer:
    """An asyncio server on a loop thread of its own, on a free port of 127.0.0.1: listening
    once the ``with`` block is entered; closed, its answers still running cancelled and its
    thread joined when it is left. Subclasses answer each connection in ``_serve``."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Answers still streaming (a stall) end with the server, not after its loop is gone.
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class StreamServer(LoopServer):
    def __init__(self, **knobs: Any) -> None:
        super().__init__()
        self.knobs = StreamKnobs(**knobs)
        self.requests = 0
        self.bodies: list[bytes] = []  # every request's body, in arrival order

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        self.bodies.append(await reader.readexactly(length))
        self.requests += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        return await self._stream(writer)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """One event as a chunk of the body, or as two pieces a moment apart (``split``)."""
        pieces = [data[: len(data) // 2], data[len(data) // 2 :]] if self.knobs.split else [data]
        for index, piece in enumerate(pieces):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            if index + 1 < len(pieces):
                await asyncio.sleep(0.0005)

    async def _stream(self, writer: asyncio.StreamWriter) -> bool:
        k = self.knobs
        await asyncio.sleep(k.ttft_s)
        if k.role_chunk:
            await self._send(writer, _chunk({"role": "assistant", "content": ""}))
        sent = 0
        for index, count in enumerate(k.tokens):
            if index:
                await asyncio.sleep(k.itl_s)
            if k.cut_at == index:
                return False
            if k.stall_at == index:
                await asyncio.sleep(3600)
            if k.error_at == index:
                await self._send(writer, _event({"error": {"message": "boom", "code": 500}}))
                continue
            if k.ping:
                await self._send(writer, b": ping\n\n")
            sent += count
            await self._send(writer, self._content(index, count, sent))
            if index == 0 and k.runaway:
                await self._runaway(writer, k.runaway)
        await self._end(writer, sent)
        return True

    def _content(self, index: int, count: int, sent: int) -> bytes:
        words = " ".join(f"w{index}.{t}" for t in range(count))
        choice = {"index": 0, "delta": {"content": words + " "}, "finish_reason": None}
        payload: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk"}
        payload["choices"] = [choice]
        if self.knobs.continuous_usage:
            payload["usage"] = self._usage(sent)
        return _event(payload)

    def _usage(self, completion: int) -> dict[str, int]:
        prompt = self.knobs.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion + self.knobs.usage_offset,
            "total_tokens": prompt + completion + self.knobs.usage_offset,
        }

    async def _runaway(self, writer: asyncio.StreamWriter, size: int) -> None:
        """``data: `` and ``size`` bytes without a line end, in 64 KiB chunks of the body."""
        piece = b"x" * 65536
        writer.write(b"6\r\ndata: \r\n")
        for _ in range(size // len(piece)):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()

    async def _end(self, writer: asyncio.StreamWriter, completion: int) -> None:
        k = self.knobs
        if k.finish:
            await self._send(writer, _chunk({}, finish="stop"))
        if k.usage:
            usage = self._usage(completion)
            await self._send(writer, _event({"id": "c", "choices": [], "usage": usage}))
        if k.done:
            await self._send(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
