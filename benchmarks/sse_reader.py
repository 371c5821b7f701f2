"""The bare SSE reader: the peer infbench's stream reading is measured against.

    python benchmarks/sse_reader.py http://127.0.0.1:8090/v1/chat/completions -c 64 --duration 5

What a hand-written aiohttp client does, the loop of vLLM's ``benchmark_serving``: ``-c``
workers in a closed loop (each posts its next request when its stream ends) over one aiohttp
session (uvloop if installed, keep-alive, up to ``-c`` connections), reading
``response.content`` line by line, decoding each ``data:`` line's JSON and counting content
chunks (``choices[0].delta.content`` not empty). Per content chunk it also keeps the gap to the
previous one of its stream (one clock read and an append to an int64 array), so that its ITL
can be checked like infbench's; nothing else is recorded. The garbage collector is off, as in
infbench's measured window. After ``--warmup`` seconds it counts for ``--duration`` seconds:
content chunks, finished streams, failures, and its own CPU time (getrusage) over that window;
then it stops posting, waits at most 10 s for the streams in flight, and prints one JSON line.

``--floor`` measures instead the floor of reading these streams from Python at all: an asyncio
protocol on uvloop per connection that writes its request, counts the content chunks in each
read (a byte search, nothing decoded, no clock read) and writes the next request when ``[DONE]``
comes. What it costs per chunk is the kernel's (the read, its ACK, epoll) and the loop's; any
reader's cost above it is its own. ``--timer-ms 1`` adds a loop timer firing every millisecond
and doing nothing else: what such a timer costs a reader whose loop is mostly idle.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import resource
import time
from array import array
from typing import cast
from urllib.parse import urlsplit

import aiohttp

now_ns = time.monotonic_ns
counts = {"chunks": 0, "streams": 0, "errors": 0}
gaps: array[int] = array("q")
HEADERS = {"Content-Type": "application/json"}
# The one chat request both readers post.
BODY = json.dumps({
    "model": "m", "messages": [{"role": "user", "content": "Say many words."}],
    "max_tokens": 100, "stream": True, "stream_options": {"include_usage": True},
}).encode()  # fmt: skip


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def worker(
    session: aiohttp.ClientSession, url: str, body: bytes, start: int, end: int
) -> None:
    while now_ns() < end:
        last, ok = 0, False
        try:
            async with session.post(url, data=body, headers=HEADERS) as response:
                async for line in response.content:  # a line at a time, chunked encoding undone
                    if line[:6] != b"data: ":
                        continue  # the blank line ending an event, a comment
                    payload = line[6:].rstrip()
                    if payload == b"[DONE]":
                        ok = response.status == 200
                        continue
                    choices = json.loads(payload).get("choices")
                    if choices and choices[0]["delta"].get("content"):
                        now = now_ns()
                        if start <= now < end:
                            counts["chunks"] += 1
                            if last >= start:
                                gaps.append(now - last)
                        last = now
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            ok = False
        if start <= now_ns() < end:
            counts["streams" if ok else "errors"] += 1


async def read(args: argparse.Namespace) -> dict[str, object]:
    start = now_ns() + int(args.warmup * 1e9)
    end = start + int(args.duration * 1e9)
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        gc.disable()
        tasks = [
            asyncio.ensure_future(worker(session, args.url, BODY, start, end))
            for _ in range(args.concurrency)
        ]
        await asyncio.sleep(max(start - now_ns(), 0) / 1e9)
        cpu0 = cpu_s()
        await asyncio.sleep(max(end - now_ns(), 0) / 1e9)
        cpu1 = cpu_s()
        _, late = await asyncio.wait(tasks, timeout=10)
        for task in late:
            task.cancel()
        gc.enable()
    ordered = sorted(gaps)

    def ms(q: float) -> float | None:  # the smallest value with at least q of all at or below
        return round(ordered[max(math.ceil(len(ordered) * q) - 1, 0)] / 1e6, 3) if ordered else None

    chunks = counts["chunks"]
    return {
        **counts, "concurrency": args.concurrency, "seconds": args.duration,
        "cpu_s": round(cpu1 - cpu0, 4), "chunks_per_s": round(chunks / args.duration, 1),
        "cpu_us_per_chunk": round(1e6 * (cpu1 - cpu0) / chunks, 2) if chunks else None,
        "itl_p50_ms": ms(0.5), "itl_p99_ms": ms(0.99), "itl_max_ms": ms(1.0),
        "unfinished": len(late),
    }  # fmt: skip


class _FloorProtocol(asyncio.Protocol):
    def __init__(self, request: bytes, end: int) -> None:
        self.request, self.end = request, end
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        counts["chunks"] += data.count(b'"content":"')
        if b"[DONE]" in data:
            counts["streams"] += 1
            if now_ns() < self.end and self.transport is not None:
                self.transport.write(self.request)


async def floor(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    loop = asyncio.get_running_loop()
    start = now_ns() + int(args.warmup * 1e9)
    end = start + int(args.duration * 1e9)
    if args.timer_ms:

        def tick() -> None:
            loop.call_later(args.timer_ms / 1000, tick)

        tick()
    connections = [
        await loop.create_connection(lambda: _FloorProtocol(request, end), url.hostname, url.port)
        for _ in range(args.concurrency)
    ]
    gc.disable()
    await asyncio.sleep(max(start - now_ns(), 0) / 1e9)
    cpu0, chunks0 = cpu_s(), counts["chunks"]
    await asyncio.sleep(max(end - now_ns(), 0) / 1e9)
    cpu1, chunks = cpu_s(), counts["chunks"] - chunks0
    for transport, _ in connections:
        transport.close()
    gc.enable()
    return {
        "chunks": chunks, "streams": counts["streams"], "errors": 0,
        "concurrency": args.concurrency, "seconds": args.duration,
        "cpu_s": round(cpu1 - cpu0, 4), "chunks_per_s": round(chunks / args.duration, 1),
        "cpu_us_per_chunk": round(1e6 * (cpu1 - cpu0) / chunks, 2) if chunks else None,
        "itl_p50_ms": None, "itl_p99_ms": None, "itl_max_ms": None, "unfinished": 0,
    }  # fmt: skip


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("url", help="the chat completions URL")
    cli.add_argument("-c", "--concurrency", type=int, default=64, help="streams at a time")
    cli.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    cli.add_argument("--warmup", type=float, default=1.0, help="seconds before, not counted")
    cli.add_argument("--floor", action="store_true", help="the floor: read and count, no more")
    cli.add_argument("--timer-ms", type=float, default=0.0, help="with --floor: a loop timer")
    args = cli.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(json.dumps(asyncio.run(floor(args) if args.floor else read(args))))


if __name__ == "__main__":
    main()
