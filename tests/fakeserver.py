"""An in-process fake HTTP/1.1 server with knobs, for unit and integration tests.

It runs a raw ``asyncio.Protocol`` server on 127.0.0.1 (a free port) in a background thread
with its own event loop, so tests drive it from plain synchronous code or from their own
``asyncio.run``. Knobs change while it runs (``set``, ``route``, ``stall_for``) and every
request is counted and time-stamped with ``time.monotonic_ns()``, the clock the senders use.

    with FakeServer(delay_s=0.01) as srv:
        srv.set(status=(200,) * 9 + (503,))   # 10 % errors, in a fixed cycle
        srv.stall_for(0.5)                    # hold every request for half a second
        ... srv.url ...; srv.count("/classify"); srv.max_open

Fractions (``reset``, ``malformed``, ``truncate``) and status cycles are deterministic: they
follow a request counter that restarts at every ``set``, so tests never depend on luck.

Hostile answers for reliability tests: ``raw`` (any bytes, then close), ``wrong_length``
(a Content-Length off by that many bytes), ``endless`` (a chunked body that never ends),
``drip_s``/``drip_bytes`` (the whole answer trickled out), ``headers`` (e.g. a Location for a
redirect loop). Bodies over 1 MiB, endless ones and dripped ones are streamed under flow
control, so a 100 MB answer never sits in the test process's memory. ``ssl_context`` serves
HTTPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["FakeServer", "Knobs", "ReceivedRequest", "free_port"]

_MAX_HEAD = 64 * 1024
_MALFORMED = b"HTPT/1.1 2x0 ???\r\nContent-Length: 0\r\n\r\n"
_STEP = 64 * 1024
_STREAM_OVER = 1024 * 1024  # bodies larger than this are generated piece by piece


@dataclass(frozen=True)
class Knobs:
    """How the server answers; ``status`` as a tuple is cycled request by request."""

    delay_s: float = 0.0
    status: int | tuple[int, ...] = 200
    body: bytes = b"ok"
    body_size: int | None = None  # answer with this many bytes instead of `body`
    content_type: str = "text/plain"
    chunked: bool = False  # Transfer-Encoding: chunked (no Content-Length)
    reset: float = 0.0  # fraction of requests answered by aborting the connection
    malformed: float = 0.0  # fraction answered with a garbage status line
    truncate: float = 0.0  # fraction whose body is cut short by closing the connection
    close: bool = False  # Connection: close after every answer
    raw: bytes | None = None  # answer with exactly these bytes, then close
    wrong_length: int = 0  # added to the declared Content-Length
    endless: bool = False  # a chunked body that never ends
    drip_s: float = 0.0  # pause between pieces of `drip_bytes` of the whole answer
    drip_bytes: int = 1
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    target: str  # path with query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    arrived_ns: int


@dataclass
class _Plan:
    action: str  # answer | reset | malformed | truncate
    ready_at: float  # loop time (time.monotonic) at which to act
    knobs: Knobs
    index: int
    head: bool  # a HEAD request: no body in the answer
    keep_alive: bool


def free_port() -> int:
    """A port nothing listens on (for "connection refused" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _picked(index: int, fraction: float) -> bool:
    # Exactly floor(n * fraction) of the first n requests are picked, evenly spread.
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


def _knobs(**values: Any) -> dict[str, Any]:
    if isinstance(values.get("status"), list):
        values["status"] = tuple(values["status"])
    if isinstance(values.get("headers"), dict):
        values["headers"] = tuple(values["headers"].items())
    return values


class FakeServer:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, **knobs: Any) -> None:
        self._ssl = ssl_context
        self._knobs = Knobs(**_knobs(**knobs))
        self._routes: dict[str, Knobs] = {}
        self._lock = threading.Lock()
        self._stall = (0.0, 0.0)  # [start, end) in time.monotonic seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self.host = "127.0.0.1"
        self.port = 0
        self._open = self._in_flight = 0
        self.reset_stats()

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeServer:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fakeserver", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout=5)
        return self

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, 0, backlog=4096, reuse_address=True, ssl=self._ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        if self._server is not None:
            # Python 3.12+ waits for every connection here; they were just aborted.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    # --- knobs (thread-safe) -----------------------------------------------------------------

    def set(self, **knobs: Any) -> None:
        """Change how every path without its own route answers; restarts the request counter."""
        with self._lock:
            self._knobs = dataclasses.replace(self._knobs, **_knobs(**knobs))
            self._n = 0

    def route(self, path: str, **knobs: Any) -> None:
        """Give ``path`` its own knobs (defaults for the ones not named)."""
        with self._lock:
            self._routes[path] = Knobs(**_knobs(**knobs))

    def clear_routes(self) -> None:
        with self._lock:
            self._routes.clear()

    def stall(self, start_after_s: float, duration_s: float) -> None:
        """Hold every request arriving in [now + start_after_s, + duration_s) until it ends."""
        start = time.monotonic() + start_after_s
        with self._lock:
            self._stall = (start, start + duration_s)

    def stall_for(self, seconds: float) -> None:
        """Stop answering for ``seconds`` from now; what arrives meanwhile is answered after."""
        self.stall(0.0, seconds)

    # --- what was received (thread-safe) -----------------------------------------------------

    def reset_stats(self) -> None:
        with self._lock:
            self._n = 0
            self._counts: dict[str, int] = {}
            self._arrivals: list[tuple[int, str]] = []
            self._last: ReceivedRequest | None = None
            # Open connections and requests in flight stay true; only the records restart.
            self._max_open, self._opened = self._open, 0
            self._max_in_flight = self._in_flight

    def count(self, path: str | None = None) -> int:
        """Requests received for ``path`` (without query), or in all."""
        with self._lock:
            return len(self._arrivals) if path is None else self._counts.get(path, 0)

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def arrivals(self, path: str | None = None) -> list[int]:
        """Arrival times (``time.monotonic_ns()``) of the requests for ``path``, or of all."""
        with self._lock:
            return [t for t, p in self._arrivals if path is None or p == path]

    @property
    def last_request(self) -> ReceivedRequest | None:
        with self._lock:
            return self._last

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    @property
    def max_open(self) -> int:
        """Most connections open at the same time since the last ``reset_stats``."""
        with self._lock:
            return self._max_open

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._opened

    @property
    def max_in_flight(self) -> int:
        """Most requests received but not yet answered at the same time."""
        with self._lock:
            return self._max_in_flight

    def wait_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until ``n`` requests in all have arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    # --- called on the server's loop ---------------------------------------------------------

    def _connected(self, connection: _Connection, up: bool) -> None:
        with self._lock:
            if up:
                self._connections.add(connection)
                self._open += 1
                self._opened += 1
                self._max_open = max(self._max_open, self._open)
            else:
                self._connections.discard(connection)
                self._open -= 1

    def _answered(self, n: int = 1) -> None:
        with self._lock:
            self._in_flight -= n

    def _plan(self, request: ReceivedRequest, keep_alive: bool) -> _Plan:
        path = request.target.split("?", 1)[0]
        now = time.monotonic()
        with self._lock:
            knobs = self._routes.get(path, self._knobs)
            index, self._n = self._n, self._n + 1
            self._counts[path] = self._counts.get(path, 0) + 1
            self._arrivals.append((request.arrived_ns, path))
            self._last = request
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            stall_start, stall_end = self._stall
        ready_at = now + knobs.delay_s
        if stall_start <= now < stall_end:
            ready_at = stall_end + knobs.delay_s
        action = "answer"
        for name in ("reset", "malformed", "truncate"):
            if _picked(index, getattr(knobs, name)):
                action = name
                break
        head = request.method == "HEAD"
        return _Plan(action, ready_at, knobs, index, head, keep_alive and not knobs.close)


class _BadRequest(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order (pipelining works)."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.pending: deque[_Plan] = deque()
        self.busy = False
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stream: _Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connected(self, True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.server._answered(len(self.pending) + self.busy)
        self.pending.clear()
        self.busy = False
        self.transport = None
        self.server._connected(self, False)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_writing(self) -> None:
        if self.stream is not None:
            self.stream.paused = True

    def resume_writing(self) -> None:
        if self.stream is not None:
            self.stream.paused = False
            if self.stream.timer is None:  # a dripping stream resumes on its own timer
                self.stream.pump()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while (parsed := self._parse()) is not None:
                self.pending.append(self.server._plan(*parsed))
        except _BadRequest:
            self._write_and_close(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        self._next()

    def _parse(self) -> tuple[ReceivedRequest, bool] | None:
        arrived_ns = time.monotonic_ns()
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                raise _BadRequest
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest from None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _BadRequest  # the senders always send a Content-Length
        total = end + 4 + length
        if len(self.buffer) < total:
            return None
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return ReceivedRequest(method, target, headers, body, arrived_ns), keep_alive

    def _next(self) -> None:
        if self.busy or not self.pending or self.transport is None:
            return
        self.busy = True
        plan = self.pending.popleft()
        loop = asyncio.get_running_loop()
        if plan.ready_at > loop.time():
            self.timer = loop.call_at(plan.ready_at, self._act, plan)
        else:
            self._act(plan)

    def _act(self, plan: _Plan) -> None:
        self.timer = None
        self.busy = False
        transport = self.transport
        if transport is None:
            return
        self.server._answered()
        if plan.action == "reset":
            transport.abort()
        elif plan.action == "malformed":
            self._write_and_close(_MALFORMED)
        elif plan.action == "truncate":
            head, body = _response(plan, chunked=False)
            self._write_and_close(head + body[: len(body) // 2])
        elif plan.knobs.raw is not None:
            self._write_and_close(plan.knobs.raw)
        elif _streamed(plan.knobs):
            self.stream = _Stream(self, plan)
            self.stream.pump()
        else:
            head, body = _response(plan, plan.knobs.chunked)
            transport.write(head if plan.head else head + body)
            if not plan.keep_alive:
                transport.close()
            else:
                self._next()

    def _streamed_out(self, plan: _Plan) -> None:
        self.stream = None
        if self.transport is None:
            return
        if not plan.keep_alive:
            self.transport.close()
        else:
            self._next()

    def _write_and_close(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            self.transport.close()


def _streamed(knobs: Knobs) -> bool:
    return knobs.endless or knobs.drip_s > 0 or (knobs.body_size or 0) > _STREAM_OVER


def _status_line(plan: _Plan) -> str:
    status = plan.knobs.status
    if isinstance(status, tuple):
        status = status[plan.index % len(status)]
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}"


def _head(plan: _Plan, chunked: bool, length: int) -> bytes:
    knobs = plan.knobs
    lines = [_status_line(plan), f"Content-Type: {knobs.content_type}"]
    lines += [f"{name}: {value}" for name, value in knobs.headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length + knobs.wrong_length}")
    if not plan.keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _body_pieces(knobs: Knobs, chunked: bool) -> Iterator[bytes]:
    """The body in pieces of at most 64 KiB (chunk-framed when ``chunked``)."""
    if knobs.endless:
        piece = b"x" * _STEP
        while True:
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
    if knobs.body_size is None:
        pieces: Iterator[bytes] = iter(
            [knobs.body[i : i + _STEP] for i in range(0, len(knobs.body), _STEP)]
        )
    else:
        sizes = [_STEP] * (knobs.body_size // _STEP) + [knobs.body_size % _STEP]
        full = b"x" * min(_STEP, knobs.body_size)
        pieces = (full[:n] for n in sizes if n)
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def _response(plan: _Plan, chunked: bool) -> tuple[bytes, bytes]:
    knobs = plan.knobs
    body = b"".join(_body_pieces(knobs, chunked))
    length = len(knobs.body) if knobs.body_size is None else knobs.body_size
    return _head(plan, chunked, length), body


def _answer_pieces(plan: _Plan) -> Iterator[bytes]:
    knobs = plan.knobs
    chunked = knobs.chunked or knobs.endless
    length = len(knobs.body) if knobs.body_size is None else knobs.body_size
    yield _head(plan, chunked, length)
    if not plan.head:
        yield from _body_pieces(knobs, chunked)


class _Stream:
    """Writes one answer piece by piece: under flow control, or dripped on a timer."""

    def __init__(self, connection: _Connection, plan: _Plan) -> None:
        self.connection, self.plan = connection, plan
        pieces = _answer_pieces(plan)
        if plan.knobs.drip_s > 0:
            size = max(1, plan.knobs.drip_bytes)
            pieces = (p[i : i + size] for p in pieces for i in range(0, len(p), size))
        self.pieces = pieces
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.timer is not None:
            self.timer.cancel()

    def pump(self) -> None:
        self.timer = None
        transport = self.connection.transport
        while not self.cancelled and not self.paused and transport is not None:
            if transport.is_closing():  # the client hung up: writes would only be logged
                self.cancel()
                return
            piece = next(self.pieces, None)
            if piece is None:
                self.connection._streamed_out(self.plan)
                return
            transport.write(piece)
            if self.plan.knobs.drip_s > 0:
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(self.plan.knobs.drip_s, self.pump)
                return
