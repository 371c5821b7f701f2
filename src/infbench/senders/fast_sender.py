"""The fast sender: a lean HTTP/1.1 keep-alive client on asyncio protocols (DESIGN §6).

aiohttp and httpx spend most of each request in general-purpose machinery; a load generator
needs little of it. Here a request is one ``transport.write`` of bytes encoded once per
distinct ``PreparedRequest``, one future resolved from the protocol's callbacks (no task per
request) and one ``call_at`` timer for the deadline (``wait_for`` would cost a task). Responses
are parsed by ``httptools`` (llhttp), which handles Content-Length and chunked bodies.

It behaves like the aiohttp sender so results do not depend on the client: no
``Accept-Encoding`` and nothing decoded (``bytes_in`` counts body bytes as they came), no
redirects followed, one deadline for the whole request (pool wait and connect included), the
same body cap and the same error kinds. ``first_byte`` is the first byte of the response, not
the end of its headers, so it measures time to first token on a streaming answer.

Each connection carries one request at a time (no pipelining); idle ones are reused last in,
first out. One retry exists: a request written on a *reused* connection that the server had
closed while it was idle (the "stale keep-alive" race that browsers and aiohttp retry) is sent
once more on a new connection. It is told apart from a server that read the request and then
hung up, which is a result ("reset") and never retried, by TCP itself: the write failed, or
at the EOF the server's TCP had not acknowledged the request (bytes still unacknowledged, or it
answered them with a reset). aiohttp's own retry cannot tell the two apart, hence it is off.

What it cannot do it refuses up front: TLS (aiohttp or httpx) and HTTP/2 (httpx).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections import deque
from time import monotonic_ns
from typing import cast

import httptools

from infbench.errors import UsageError
from infbench.senders.base import SenderOptions
from infbench.senders.http1 import Http1Encoder
from infbench.wire import ErrorKind, Outcome, PreparedRequest, classify_status

__all__ = ["FastSender"]

if sys.platform == "linux":
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # == SIOCOUTQ: bytes sent but not yet acknowledged
else:  # pragma: no cover - elsewhere only a pending socket error tells
    _OUTQ = None


class _Stop(Exception):
    """Raised from a parser callback to stop parsing once the request has been settled."""


class FastSender:
    name = "fast"

    def __init__(self, options: SenderOptions) -> None:
        if options.http2:
            raise UsageError(
                "the fast sender speaks HTTP/1.1 only; "
                "use client.sender: httpx with http2: true for HTTP/2",
                hint="set client.sender: httpx (or client.http2: false)",
            )
        self.options = options
        self._encoder = Http1Encoder(options.base_url)
        self._limit = max(1, options.connections)
        self._timeout_s = options.timeout_s
        self._cap = options.max_response_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._size = 0  # connections open or being opened
        self._idle: list[_Connection] = []
        self._waiters: deque[asyncio.Future[_Connection | Outcome | None]] = deque()
        self._all: set[_Connection] = set()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()  # connections are opened on demand

    async def close(self) -> None:
        self._loop = None
        self._limit = 0  # nothing opens after this
        for connection in list(self._all):
            connection.close()  # a request still in flight ends as "reset"
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(Outcome(monotonic_ns(), error="reset"))
        await asyncio.sleep(0)  # let the transports report connection_lost

    async def send(self, request: PreparedRequest) -> Outcome:
        loop = self._loop
        if loop is None:
            raise RuntimeError("FastSender.send() before open() or after close()")
        deadline = loop.time() + self._timeout_s
        data, rest, head = self._encoder.encode(request)
        fresh = False  # True for the one retry: it must go out on a new connection
        while True:
            idle = self._idle
            if idle and not fresh:
                connection = idle.pop()
                connection.idle = False
            else:
                got = await self._acquire(deadline, fresh)
                if isinstance(got, Outcome):
                    return got
                connection = got
            future: asyncio.Future[Outcome | None] = loop.create_future()
            connection.send(future, data, rest, head)
            timer = loop.call_at(deadline, connection.expire)
            try:
                outcome = await future
            except asyncio.CancelledError:
                connection.cancel()
                raise
            finally:
                timer.cancel()
            if outcome is not None:
                if not connection.closed:
                    self._release(connection)
                return outcome
            if fresh:  # stale again, on a connection handed over by another request
                return Outcome(monotonic_ns(), error="reset")
            fresh = True

    # --- the pool -----------------------------------------------------------------------------

    async def _acquire(self, deadline: float, fresh: bool) -> _Connection | Outcome:
        """A connection to send on, or the Outcome that ends the request trying to get one."""
        while True:
            if self._idle:
                if not fresh:
                    connection = self._idle.pop()
                    connection.idle = False
                    return connection
                if self._size >= self._limit:
                    self._idle[0].close()  # the least recently used makes room for a new one
            if self._size < self._limit:
                self._size += 1
                return await self._connect(deadline)
            got = await self._wait(deadline)
            if got is None:
                return await self._connect(deadline)
            if isinstance(got, Outcome) or not got.closed:
                return got

    async def _wait(self, deadline: float) -> _Connection | Outcome | None:
        """Queue until the deadline: a connection handed over, None for a free slot (connect
        in it), or the timeout Outcome."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | Outcome | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, _expire_waiter, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                got = waiter.result()  # handed over just before the cancel: pass it on
                if got is None:
                    self._size -= 1
                    self._grant()
                elif isinstance(got, _Connection) and not got.closed:
                    self._release(got)
            raise
        finally:
            timer.cancel()

    async def _connect(self, deadline: float) -> _Connection | Outcome:
        """Open a connection in a slot already counted in ``_size``."""
        loop = asyncio.get_running_loop()
        kind: ErrorKind
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self), self._encoder.host, self._encoder.port
                ),
                max(deadline - loop.time(), 0.0),
            )
        except asyncio.CancelledError:
            self._size -= 1
            self._grant()
            raise
        except asyncio.TimeoutError:  # before OSError: it is one since Python 3.11
            kind = "timeout"
        except OSError:
            kind = "connect"  # refused, unreachable, name not resolved
        else:
            if not connection.closed and self._loop is not None:
                connection.counted = True
                return connection
            connection.close()  # closed by the server at once, or the sender was closed
            kind = "reset"
        self._size -= 1
        self._grant()
        return Outcome(monotonic_ns(), error=kind)

    def _release(self, connection: _Connection) -> None:
        """A connection that finished its request: to the next waiter, else to the idle list."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle = True
        self._idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        """A connection closed (by either side): free its slot for a waiter."""
        self._all.discard(connection)
        if connection.idle:
            connection.idle = False
            self._idle.remove(connection)
        if connection.counted:
            connection.counted = False
            self._size -= 1
            self._grant()

    def _grant(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                self._size += 1
                waiter.set_result(None)
                return


class _Connection(asyncio.Protocol):
    """One keep-alive connection; settles the future of the request it carries."""

    __slots__ = (
        "bytes_in",
        "cap",
        "chunked",
        "closed",
        "counted",
        "declared",
        "first_byte_ns",
        "future",
        "head",
        "headers_done",
        "idle",
        "parser",
        "pool",
        "refused",
        "status",
        "transport",
        "used",
        "write_failed",
    )

    transport: asyncio.Transport

    def __init__(self, pool: FastSender) -> None:
        self.pool = pool
        self.cap = pool._cap
        self.parser = httptools.HttpResponseParser(self)
        self.future: asyncio.Future[Outcome | None] | None = None
        self.closed = self.counted = self.idle = False
        self.used = 0  # requests answered on this connection
        self._reset_request(False)
        pool._all.add(self)

    def _reset_request(self, head: bool) -> None:
        self.first_byte_ns = self.status = self.bytes_in = 0
        self.declared = -1  # Content-Length, when the response has one
        self.chunked = self.headers_done = self.refused = self.write_failed = False
        self.head = head

    # --- driven by the sender -------------------------------------------------------------------

    def send(
        self, future: asyncio.Future[Outcome | None], data: bytes, rest: bytes | None, head: bool
    ) -> None:
        self.future = future
        self._reset_request(head)
        transport = self.transport
        transport.write(data)
        if rest is not None:
            transport.write(rest)
        # A failed write closes the transport at once; connection_lost follows.
        self.write_failed = transport.is_closing()

    def expire(self) -> None:
        if self.future is not None:
            self._fail("timeout")

    def cancel(self) -> None:
        self.future = None
        self.abort()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
            self.pool._forget(self)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()
            self.pool._forget(self)

    def _settle(self, outcome: Outcome | None) -> None:
        future = self.future
        if future is not None:
            self.future = None
            if not future.done():  # it is cancelled when the request's task was
                future.set_result(outcome)

    def _fail(self, kind: ErrorKind) -> None:
        """End the request with ``kind`` and drop the connection (its state is unknown)."""
        self._settle(Outcome(monotonic_ns(), self.first_byte_ns, self.status, kind, self.bytes_in))
        self.abort()

    # --- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.future is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted
            return
        if not self.first_byte_ns:
            self.first_byte_ns = monotonic_ns()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("protocol")
        except httptools.HttpParserError as exc:
            if not isinstance(exc.__context__, _Stop):
                self._fail("protocol")  # bad status line, headers, length or chunk framing

    def eof_received(self) -> bool:
        if self.future is None:
            self.close()  # the server ended an idle keep-alive connection
        elif not self.first_byte_ns and self.used:
            self.refused = _request_refused(self.transport)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
        if self.future is None:
            return
        if self.headers_done and self.declared < 0 and not self.chunked:
            self._complete()  # a body delimited by the end of the connection (HTTP/1.0 style)
        elif not self.first_byte_ns and self.used and (self.refused or self.write_failed):
            self._settle(None)  # closed while idle, before the request: the sender retries
        else:
            self._fail("reset")

    # --- httptools callbacks --------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length":
            self.declared = int(value)
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            return  # informational (100 Continue): the real answer follows
        self.status = status
        self.headers_done = True
        if self.head:  # llhttp cannot be told that a HEAD answer has no body
            keep_alive = self.declared >= 0 and self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
            self._complete(keep_alive)
            raise _Stop
        if self.declared > self.cap and status != 204 and status != 304:
            self._fail("too_large")
            raise _Stop

    def on_body(self, body: bytes) -> None:
        self.bytes_in += len(body)
        if self.bytes_in > self.cap:
            self._fail("too_large")
            raise _Stop

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an informational answer
            self.declared = -1
            self.chunked = False
            return
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool = False) -> None:
        status = self.status
        outcome = Outcome(
            monotonic_ns(), self.first_byte_ns, status, classify_status(status), self.bytes_in
        )
        self.used += 1
        if not keep_alive:
            self.close()  # Connection: close, HTTP/1.0, or a body that ran to the end
        self._settle(outcome)


def _request_refused(transport: asyncio.Transport) -> bool:
    """At an EOF: did the peer's TCP never take our request? True when part of it is still
    unacknowledged, or the peer answered it with a reset (a pending socket error): the server
    had closed the connection before the request arrived, so it cannot have read it."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return True
        if _OUTQ is not None:
            unacked = fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0")
            return bool(struct.unpack("i", unacked)[0])
    except OSError:
        pass
    return False


def _expire_waiter(waiter: asyncio.Future[_Connection | Outcome | None]) -> None:
    if not waiter.done():
        waiter.set_result(Outcome(monotonic_ns(), error="timeout"))
