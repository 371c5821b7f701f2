"""An SSE sink: answers every POST with an OpenAI chat stream, as cheaply as Python allows.

    python benchmarks/sse_sink.py --chunks 100 --gap-ms 10        # prints "listening on http://…"
    taskset -c 1 python benchmarks/sse_sink.py --port 8090 --lifetime 600

For measuring the client reading the streams (benchmarks/streams.py), so the sink must cost
less per chunk than any reader: asyncio protocols (uvloop if installed), HTTP/1.1 keep-alive,
minimal request framing (head up to the blank line, a ``Content-Length`` body skipped; the body
is not read), every event pre-rendered once as a chunk of the chunked transfer encoding.

Each POST gets at once the head and a role-only chunk, then ``--chunks`` content chunks, one per
tick of a single ``--gap-ms`` clock shared by every stream (as a batching LLM server decodes one
token for every running sequence per step), and with the last one the ``finish_reason`` chunk,
the usage chunk (``completion_tokens`` = chunks, so one token per chunk), ``data: [DONE]`` and
the end of the body. A tick is one ``write`` per running stream. Events are vLLM-shaped (compact
JSON, ~230 bytes). A request arriving while its connection still streams waits for that stream.

``GET`` (any path) answers the sink's counters as JSON, for the caller to take differences:
requests, streams done, content chunks written, ticks, late ticks (started half a gap or more
after their due time), CPU seconds of this process, and the worst tick lag and the longest
tick since the previous ``GET``. When a tick is late by more than a gap the clock
resynchronises instead of bursting to catch up; late ticks mean the sink, not the client, set
the pace.

Stops on SIGINT or SIGTERM, and by itself after ``--lifetime`` seconds (default 3600).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_FIELDS = {
    "id": "chatcmpl-8f2c1e0b9a7d4c6e",
    "object": "chat.completion.chunk",
    "created": 1718000000,
    "model": "meta-llama/Llama-3.1-8B-Instruct",
}


def _chunk(payload: dict[str, object] | str) -> bytes:
    """One server-sent event framed as one chunk of the HTTP body."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    event = f"data: {text}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(event), event)


def _choice(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**_FIELDS, "choices": [choice]}


def events(chunks: int, prompt_tokens: int = 12) -> tuple[bytes, bytes, bytes]:
    """(head and role chunk, one content chunk, the end of the stream), pre-rendered."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": chunks}
    usage["total_tokens"] = prompt_tokens + chunks
    start = HEAD + _chunk(_choice({"role": "assistant", "content": ""}))
    content = _chunk(_choice({"content": " word"}))
    end = (
        _chunk(_choice({}, finish="stop"))
        + _chunk({**_FIELDS, "choices": [], "usage": usage})
        + _chunk("[DONE]")
        + b"0\r\n\r\n"
    )
    return start, content, end


class Clock:
    """The one tick every running stream shares, and the counters."""

    def __init__(self, chunks: int, gap_s: float) -> None:
        self.start, self.content, self.end = events(chunks)
        self.last, self.gap_s = self.content + self.end, gap_s
        self.chunks = chunks
        self.running: list[Stream] = []
        self.counts = {"requests": 0, "streams": 0, "chunks": 0, "ticks": 0, "late_ticks": 0}
        self.worst_lag_s = self.longest_tick_s = 0.0
        self.loop = asyncio.get_running_loop()
        self.due = time.monotonic() + gap_s  # uvloop's loop.time() has 1 ms steps: not for lags
        self.loop.call_later(gap_s, self.tick)

    def tick(self) -> None:
        began = time.monotonic()
        lag = began - self.due
        self.worst_lag_s = max(self.worst_lag_s, lag)
        self.counts["late_ticks"] += lag >= self.gap_s / 2
        running, self.running = self.running, []
        content, last, done, written = self.content, self.last, 0, 0
        for stream in running:
            if stream.closed:
                continue
            written += 1
            stream.left -= 1
            if stream.left:
                stream.transport.write(content)
                self.running.append(stream)
            else:
                stream.transport.write(last)
                done += 1
                stream.finished()  # its next request, if one waits, joins self.running
        self.counts["ticks"] += 1
        self.counts["chunks"] += written
        self.counts["streams"] += done
        self.due += self.gap_s
        now = time.monotonic()
        self.longest_tick_s = max(self.longest_tick_s, now - began)
        if now > self.due + self.gap_s:  # behind by more than a gap: resynchronise, no burst
            self.due = now
        self.loop.call_later(max(self.due - now, 0.0), self.tick)

    def stats(self) -> bytes:
        figures = {
            **self.counts,
            "running": len(self.running),
            "cpu_s": round(time.process_time(), 4),
            "worst_tick_lag_ms": round(1e3 * self.worst_lag_s, 3),
            "longest_tick_ms": round(1e3 * self.longest_tick_s, 3),
            "chunks_per_stream": self.chunks,
            "gap_ms": round(1e3 * self.gap_s, 3),
        }
        self.worst_lag_s = self.longest_tick_s = 0.0
        body = json.dumps(figures).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        return head % len(body) + body


def _body_length(head: bytes) -> int:
    """``Content-Length`` of a lower-cased request head; 0 when absent."""
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at + 17)
    return int(head[at + 17 : end if end >= 0 else len(head)])


class Stream(asyncio.Protocol):
    """One connection: requests framed, one stream at a time, the rest queued."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.buffer, self.skip = clock, b"", 0
        self.waiting = self.left = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        buffer, position = (self.buffer + data if self.buffer else data), 0
        while True:
            if self.skip:
                taken = min(self.skip, len(buffer) - position)
                self.skip, position = self.skip - taken, position + taken
                if self.skip:
                    break
            end = buffer.find(b"\r\n\r\n", position)
            if end < 0:
                break
            head = buffer[position:end].lower()
            self.skip = _body_length(head)
            position = end + 4
            if head.startswith(b"get"):
                self.transport.write(self.clock.stats())
            else:
                self.clock.counts["requests"] += 1
                self.waiting += 1
        self.buffer = buffer[position:]
        if self.waiting and not self.left:
            self.begin()

    def begin(self) -> None:
        self.waiting -= 1
        self.left = self.clock.chunks
        self.transport.write(self.clock.start)
        self.clock.running.append(self)

    def finished(self) -> None:
        if self.waiting and not self.closed:
            self.begin()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(args.chunks, args.gap_ms / 1000)
    server = await loop.create_server(
        lambda: Stream(clock), "127.0.0.1", args.port, backlog=4096, reuse_address=True
    )
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        with contextlib.suppress(asyncio.TimeoutError):  # the lifetime is over
            await asyncio.wait_for(stop.wait(), args.lifetime)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--port", type=int, default=0, help="0: a free one (printed)")
    cli.add_argument("--chunks", type=int, default=100, help="content chunks per answer (N)")
    cli.add_argument("--gap-ms", type=float, default=10.0, help="between content chunks (G)")
    cli.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many s")
    args = cli.parse_args()
    if args.chunks < 1 or args.gap_ms <= 0:
        cli.error("--chunks must be ≥ 1 and --gap-ms > 0")
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
