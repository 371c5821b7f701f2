"""CPU per received chunk of the stream readers (senders/streams.py), DESIGN §12 "streaming".

    PYTHONPATH=src .venv/bin/python benchmarks/streams_chunk.py

Feeds 500-chunk vLLM-shaped chat streams (compact JSON, ~230-byte events) to a fresh reader per
stream, best of 7 runs with the garbage collector off (as in the measured window), and prints
microseconds per content chunk beside the cost of the stdlib JSON decode alone.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable

from infbench.senders.streams import SseReader, TextStreamReader

CHUNKS, STREAMS, RUNS = 500, 20, 15
HEAD = {
    "id": "chatcmpl-8f2c1e0b9a7d4c6e",
    "object": "chat.completion.chunk",
    "created": 1718000000,
    "model": "meta-llama/Llama-3.1-8B-Instruct",
}


def event(text: str, eol: str = "\n") -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    payload = json.dumps({**HEAD, "choices": [choice]}, separators=(",", ":"))
    return f"data: {payload}{eol}{eol}".encode()


def best_us_per_chunk(run: Callable[[], None]) -> float:
    best = min(_timed(run) for _ in range(RUNS))
    return best / (STREAMS * CHUNKS) / 1000


def _timed(run: Callable[[], None]) -> int:
    start = time.perf_counter_ns()
    run()
    return time.perf_counter_ns() - start


def sse(reads: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(STREAMS):
            reader, now = SseReader("openai-chat"), 0
            for data in reads:
                now += 20_000_000
                reader.feed(data, now)
            reader.feed(b"data: [DONE]\n\n", now)
            assert reader.end() is None and reader.chunks == CHUNKS

    return run


def main() -> None:
    lf = [event(f" word{i}") for i in range(CHUNKS)]
    cases = {
        "one event per read (LF)": lf,
        "one event per read (CRLF)": [event(f" word{i}", "\r\n") for i in range(CHUNKS)],
        "each event split over 2 reads": [half for e in lf for half in (e[:100], e[100:])],
        "4 events per read": [b"".join(lf[i : i + 4]) for i in range(0, CHUNKS, 4)],
    }
    payloads = [e[6:-2].decode() for e in lf]
    decode = json.JSONDecoder().decode

    def json_only() -> None:
        for _ in range(STREAMS):
            for payload in payloads:
                decode(payload)

    def text() -> None:
        for _ in range(STREAMS):
            reader = TextStreamReader()
            for now, data in enumerate(lf):
                reader.feed(data, now)

    gc.disable()
    print(f"{len(lf[0])}-byte events; µs per content chunk, best of {RUNS}")
    rows = {"stdlib JSON decode of the payload alone": json_only, "TextStreamReader": text}
    rows |= {f"SseReader, {name}": sse(reads) for name, reads in cases.items()}
    for name, run in rows.items():
        print(f"  {name:<42}{best_us_per_chunk(run):6.2f}")


if __name__ == "__main__":
    main()
