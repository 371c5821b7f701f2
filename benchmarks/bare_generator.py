"""The Python floor: an open-loop HTTP/1.1 keep-alive generator that records nothing but lag.

    python benchmarks/bare_generator.py http://127.0.0.1:8080/ --rate 20000 --duration 3

asyncio protocols (uvloop if installed), ``--connections`` opened before the start, one
pre-rendered request, minimal response framing (status line and Content-Length; no chunked
encoding). The dispatcher sleeps until 0.6 ms before each due time and yields in a loop for the
rest, as infbench's does; an arrival finding no free connection takes the next one freed. Per
arrival it stores only sent − intended (ns) in a preallocated array; percentiles are computed
after the run, over the arrivals after ``--warmup`` (the counts include the warm-up's). It waits
at most 5 s for the last answers. ``--shard j/k`` runs arrivals j, j+k, ... of
the schedule from a common ``--start-at`` (Unix time), as ``client.processes: k`` does, and
``--lags FILE`` saves the measured lags (int64) so that the caller can merge shards exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from array import array
from collections import deque
from urllib.parse import urlsplit

now_ns = time.monotonic_ns
free: deque[Conn] = deque()
waiting: deque[tuple[int, int]] = deque()  # (slot, due) of arrivals that found no free connection
counts = {"sent": 0, "completed": 0, "errors": 0}


class Conn(asyncio.Protocol):
    def __init__(self, request: bytes, lags: array[int]) -> None:
        self.request, self.lags, self.buf, self.busy = request, lags, b"", False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        free.append(self)

    def send(self, slot: int, due: int) -> None:
        self.lags[slot] = now_ns() - due  # stamped just before the write, as infbench does
        self.transport.write(self.request)
        self.busy = True
        counts["sent"] += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while (head := buf.find(b"\r\n\r\n")) >= 0:
            at = buf.find(b"Content-Length:", 0, head)
            size = int(buf[at + 15 : buf.find(b"\r\n", at)]) if at >= 0 else 0
            if len(buf) < head + 4 + size:
                break
            counts["completed" if buf.startswith(b"HTTP/1.1 200") else "errors"] += 1
            buf, self.busy = buf[head + 4 + size :], False
            if waiting:
                self.send(*waiting.popleft())
            else:
                free.append(self)
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        counts["errors"] += self.busy
        if self in free:
            free.remove(self)


async def generate(args: argparse.Namespace) -> dict[str, object]:
    url, (shard, shards) = urlsplit(args.url), map(int, args.shard.split("/"))
    request = f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode()
    arrivals = range(shard, int(args.rate * (args.warmup + args.duration)), shards)
    lags = array("q", bytes(8 * len(arrivals)))
    loop = asyncio.get_running_loop()
    for _ in range(args.connections):
        await loop.create_connection(lambda: Conn(request, lags), url.hostname, url.port or 80)
    start = now_ns() + max(int((args.start_at - time.time()) * 1e9), 10_000_000)
    gc.disable()
    for slot, index in enumerate(arrivals):
        due = start + int(index * 1e9 / args.rate)
        if due - now_ns() > 600_000:
            await asyncio.sleep((due - now_ns() - 600_000) / 1e9)
        while now_ns() < due:
            await asyncio.sleep(0)
        if free:
            free.pop().send(slot, due)
        else:
            waiting.append((slot, due))
    deadline = now_ns() + 5_000_000_000
    while counts["completed"] + counts["errors"] < len(arrivals) and now_ns() < deadline:
        await asyncio.sleep(0.001)
    gc.enable()
    skip = len(range(shard, int(args.rate * args.warmup), shards))
    measured = sorted(lags[skip : counts["sent"]])
    if args.lags:
        with open(args.lags, "wb") as out:
            out.write(array("q", measured).tobytes())

    def pick(q: float) -> float | None:
        return measured[min(int(q * len(measured)), len(measured) - 1)] / 1e6 if measured else None

    return {"scheduled": len(arrivals), **counts, "lag_p50_ms": pick(0.5), "lag_p99_ms": pick(0.99)}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("url")
    cli.add_argument("--rate", type=float, default=1000.0, help="arrivals/s, all shards together")
    cli.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    cli.add_argument("--warmup", type=float, default=1.0, help="seconds before, lags not counted")
    cli.add_argument("--connections", type=int, default=64)
    cli.add_argument("--shard", default="0/1", help="j/k: arrivals j, j+k, j+2k, ...")
    cli.add_argument("--start-at", type=float, default=0.0, help="Unix time of arrival 0")
    cli.add_argument("--lags", default="", help="file for the measured lags (int64 ns)")
    args = cli.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(json.dumps(asyncio.run(generate(args))))


if __name__ == "__main__":
    main()
