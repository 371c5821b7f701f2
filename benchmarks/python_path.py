"""The Python cost of one request on the default sender, without sockets (DESIGN §12, issue 14).

One request's whole path through the interpreter, as the open loop runs it: the engine's
dispatch (``Engine._spawn``), ``FastSender.send_now`` (encoding looked up, the settlement, the
write handed to a transport that drops it), the answer parsed by llhttp (``data_received`` with
nginx's five headers), the Outcome, the settlement chain and the 16-field stamp. No socket, no
event-loop wake-up: what is left of a request's cost on the generator's core is the kernel's
(write, read, epoll) and the loop's. Beside it, the bare generator's answer handling (three
byte searches, benchmarks/bare_generator.py), timed the same way.

    .venv/bin/python benchmarks/python_path.py              # 200,000 requests, best of 5
    taskset -c 0 .venv/bin/python benchmarks/python_path.py --requests 500000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import numpy as np

from infbench.load.engine import Engine
from infbench.recorder.stamps import StampBuffer
from infbench.schedule.arrivals import PhasePlan, Schedule
from infbench.senders.base import SenderOptions
from infbench.senders.fast_sender import FastSender
from infbench.wire import PreparedRequest

NGINX_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 16:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)


class _DroppingTransport:
    """Takes the writes and forgets them: the socket's cost is not what is measured here."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _NoRecorder:
    def send_bytes(self, buf: Any, offset: int = 0, size: int = 0) -> None:
        pass


class _OneRequest:
    def __init__(self) -> None:
        self.prepared = PreparedRequest("GET", "/")

    def request(self, seq: int) -> PreparedRequest:
        return self.prepared


async def infbench_path(requests: int) -> float:
    """Seconds per request of dispatch, send_now, the answer and the stamp."""
    sender = FastSender(SenderOptions(base_url="http://127.0.0.1:9", connections=1))
    sender._loop = asyncio.get_running_loop()
    connection = sender._new_connection()
    connection.connection_made(_DroppingTransport())  # type: ignore[arg-type]
    connection.counted = True
    sender._all.add(connection)
    sender._release(connection)
    phase = PhasePlan("a", 0, False, "trace", 1.0, np.zeros(1), None, np.random.SeedSequence(0),
                      None, 1.0)  # fmt: skip
    schedule = Schedule((phase,), sha256="")
    engine = Engine(schedule, sender, _OneRequest(), StampBuffer(_NoRecorder()),  # type: ignore[arg-type]
                    connections=1, timeout_s=5.0)  # fmt: skip
    start = time.perf_counter()
    for seq in range(requests):
        engine._spawn(0, seq, seq)
        connection.data_received(NGINX_ANSWER)
    elapsed = time.perf_counter() - start
    assert engine._sent == requests and not engine._tasks, "every request went out at once"
    return elapsed / requests


def bare_answer_path(requests: int) -> float:
    """Seconds per answer of the bare generator's parsing (its data_received, inlined)."""
    start = time.perf_counter()
    for _ in range(requests):
        buf = NGINX_ANSWER
        head = buf.find(b"\r\n\r\n")
        at = buf.find(b"Content-Length:", 0, head)
        size = int(buf[at + 15 : buf.find(b"\r\n", at)]) if at >= 0 else 0
        assert len(buf) >= head + 4 + size and buf.startswith(b"HTTP/1.1 200")
    return (time.perf_counter() - start) / requests


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--requests", type=int, default=200_000)
    cli.add_argument("--repeat", type=int, default=5, help="best of this many")
    args = cli.parse_args()
    gc.disable()
    ours = min(asyncio.run(infbench_path(args.requests)) for _ in range(args.repeat))
    bare = min(bare_answer_path(args.requests) for _ in range(args.repeat))
    print(f"infbench (fast): {ours * 1e6:.2f} µs per request (dispatch, answer, stamp)")
    print(f"bare generator:  {bare * 1e6:.2f} µs per answer (its parsing only)")


if __name__ == "__main__":
    main()
