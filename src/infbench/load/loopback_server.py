"""The loopback sink: a minimal HTTP/1.1 server that answers every request with a fixed 200.

``infbench calibrate`` and the ``benchmarks/`` suite measure the generator, so the server must
cost as little as possible: a raw asyncio protocol on uvloop, no routing, no header parsing
beyond finding where a request ends (``Content-Length`` bodies are skipped; chunked request
bodies are not supported), keep-alive, pipelining answered in order. It runs in its own
process so it never shares an event loop (or the GIL) with the generator:

    python -m infbench.load.loopback_server --port 8080        # prints "listening on http://127.0.0.1:8080"

``Sink`` starts it from Python on a free port and stops it again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
from types import TracebackType

__all__ = ["Sink", "answer", "main", "serve"]

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_MAX_HEAD = 64 * 1024
_READY_TIMEOUT_S = 30.0


def answer(body: bytes) -> bytes:
    """The one response the sink sends, encoded once."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


def _body_length(head: bytes) -> int:
    """Content-Length of a request head (0 when absent); the name matched case-insensitively."""
    lowered = head.lower()
    at = lowered.find(_CONTENT_LENGTH)
    if at < 0:
        return 0
    start = at + len(_CONTENT_LENGTH)
    end = lowered.find(b"\r\n", start)
    return int(lowered[start : end if end >= 0 else len(lowered)].strip() or 0)


class _SinkProtocol(asyncio.Protocol):
    """Counts complete requests in what arrived and writes one response for each."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buffer = b""
        self.skip = 0  # body bytes of the current request still to arrive
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        answered, position = 0, 0
        while True:
            if self.skip:
                taken = min(self.skip, len(buffer) - position)
                self.skip -= taken
                position += taken
                if self.skip:
                    break
            end = buffer.find(_HEAD_END, position)
            if end < 0:
                break
            self.skip = _body_length(buffer[position:end])
            position = end + len(_HEAD_END)
            answered += 1
        self.buffer = buffer[position:]
        if len(self.buffer) > _MAX_HEAD and self.transport is not None:
            self.transport.close()  # a head this long is not what the sink is for
            return
        if answered and self.transport is not None:
            self.transport.write(self.response * answered)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _serve(host: str, port: int, response: bytes, announce: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _SinkProtocol(response), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if announce:
        print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def serve(host: str = "127.0.0.1", port: int = 0, body: bytes = b"ok") -> None:
    """Serve until SIGINT or SIGTERM; prints the URL once listening (port 0 picks a free one)."""
    loop = _new_loop()
    try:
        loop.run_until_complete(_serve(host, port, answer(body), announce=True))
    finally:
        loop.close()


class Sink:
    """``python -m infbench.load.loopback_server`` in a child process on a free port.

    A context manager.

    ``cpus`` pins the child to those CPUs (Linux), so it does not share the generator's core.
    """

    def __init__(self, body_size: int = 2, cpus: set[int] | None = None) -> None:
        self.body_size, self.cpus = body_size, cpus
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        command = [sys.executable, "-m", "infbench.load.loopback_server", "--port", "0"]
        command += ["--body-size", str(self.body_size)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        if self.cpus and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, self.cpus)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], _READY_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""  # its URL, once listening
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the loopback sink did not start (it printed {line!r})")
        self.url = line.removeprefix("listening on ").strip()
        return self.url

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m infbench.load.loopback_server",
        description="Answer every HTTP request with a fixed 200 (for calibration and benchmarks).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--body-size", type=int, default=2, help="bytes of response body")
    args = parser.parse_args(argv)
    serve(args.host, args.port, b"ok" if args.body_size == 2 else b"x" * args.body_size)


if __name__ == "__main__":
    main()
