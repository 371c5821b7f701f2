"""The fast sender: a lean HTTP/1.1 keep-alive client on asyncio protocols (DESIGN §6).

aiohttp and httpx spend most of each request in general-purpose machinery; a load generator
needs little of it. Here a request is one ``transport.write`` of bytes encoded once per
distinct ``PreparedRequest`` (``http1.py``); deadlines are checked by one sweep over the
connections every ``sweep_interval(timeout)`` (a loop timer per request cost 5 µs). With a
connection idle, ``send_now`` writes at once and the protocol's callbacks hand the outcome to
the caller (no task, no future): a burst leaves at the pace of socket writes. Otherwise
``send`` queues for a connection and awaits one future. Responses are parsed by ``httptools``
(llhttp), which handles Content-Length and chunked bodies. For a run, every connection is
opened before the first arrival, as wrk does (``SenderOptions.preopen``).

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
from collections import deque
from collections.abc import Callable
from time import monotonic_ns

from infbench.errors import UsageError
from infbench.senders.base import ReadNotice, SenderOptions, new_reader
from infbench.senders.http1 import DIRECT, Http1Connection, Http1Encoder
from infbench.wire import ErrorKind, Outcome, PreparedRequest

__all__ = ["FastSender"]

_PREOPEN_S = 5.0  # the most open() waits for the connections it opens ahead of the run


def sweep_interval(timeout_s: float) -> float:
    """How often deadlines are checked: a timeout fires at most this late (a twentieth of it,
    10-100 ms), and a sweep costs one look at every connection."""
    return min(max(timeout_s / 20, 0.01), 0.1)


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
        self._idle: list[Http1Connection] = []
        self._waiters: deque[asyncio.Future[Http1Connection | Outcome | None]] = deque()
        self._all: set[Http1Connection] = set()
        self._sweep_s = sweep_interval(self._timeout_s)
        self._sweeper: asyncio.TimerHandle | None = None
        # Every read of every connection tests it: the loop-lag probe's timer slows down
        # while nothing is read and comes back at the first read (load/loop_lag.py).
        self.read_notice = ReadNotice()

    async def open(self) -> None:
        """Open the connections before the run, as wrk does: a burst at the start must find
        them ready (best effort; what fails to open now is opened on demand)."""
        self._loop = loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_s, self._sweep)
        if not self.options.preopen:
            return
        deadline = loop.time() + min(self._timeout_s, _PREOPEN_S)
        opened = await asyncio.gather(*(self._acquire(deadline, False) for _ in range(self._limit)))
        for got in opened:
            if isinstance(got, Http1Connection):
                self._release(got)

    def _new_connection(self) -> Http1Connection:
        # Known to the pool (``_all``) only once connected: uvloop makes the protocol before
        # the connection exists, and one that never connects has no transport to close.
        return Http1Connection(self._cap, self._forget, self._direct_done, self.read_notice)

    def send_now(self, request: PreparedRequest, on_done: Callable[[Outcome], None]) -> bool:
        """Write ``request`` on an idle connection at once, without a task, and call
        ``on_done`` with its outcome from the connection's callbacks. False (and nothing done)
        when no connection is idle: then ``send`` queues for one."""
        loop = self._loop
        if not self._idle or loop is None:
            return False
        connection = self._idle.pop()
        connection.idle = False
        data, rest, head = self._encoder.encode(request)
        connection.request, connection.on_done = request, on_done
        deadline = loop.time() + self._timeout_s
        connection.send(DIRECT, data, rest, head, deadline, new_reader(self.options))
        return True

    def _sweep(self) -> None:
        """Expire the requests past their deadline; again in ``_sweep_s`` while open."""
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        for connection in [c for c in self._all if c.future is not None and c.deadline <= now]:
            connection.expire()
        self._sweeper = loop.call_later(self._sweep_s, self._sweep)

    def _direct_done(self, connection: Http1Connection, outcome: Outcome | None) -> None:
        """The outcome of a request written by ``send_now``, from the connection's callbacks."""
        request, on_done = connection.request, connection.on_done
        connection.request = connection.on_done = None
        assert request is not None and on_done is not None
        if outcome is None:  # refused on a stale connection: again on a new one, in a task
            assert self._loop is not None
            task = self._loop.create_task(self.send(request))
            task.add_done_callback(lambda t: on_done(t.result()))
            return
        if not connection.closed:
            self._release(connection)  # first: on_done may send on it again
        on_done(outcome)

    async def close(self) -> None:
        self._loop = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
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
            connection.send(future, data, rest, head, deadline, new_reader(self.options))
            try:
                outcome = await future
            except asyncio.CancelledError:
                connection.cancel()
                raise
            if outcome is not None:
                if not connection.closed:
                    self._release(connection)
                return outcome
            if fresh:  # stale again, on a connection handed over by another request
                return Outcome(monotonic_ns(), error="reset")
            fresh = True

    # --- the pool -----------------------------------------------------------------------------

    async def _acquire(self, deadline: float, fresh: bool) -> Http1Connection | Outcome:
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

    async def _wait(self, deadline: float) -> Http1Connection | Outcome | None:
        """Queue until the deadline: a connection handed over, None for a free slot (connect
        in it), or the timeout Outcome."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Http1Connection | Outcome | None] = loop.create_future()
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
                elif isinstance(got, Http1Connection) and not got.closed:
                    self._release(got)
            raise
        finally:
            timer.cancel()

    async def _connect(self, deadline: float) -> Http1Connection | Outcome:
        """Open a connection in a slot already counted in ``_size``."""
        loop = asyncio.get_running_loop()
        kind: ErrorKind
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    self._new_connection, self._encoder.host, self._encoder.port
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
                self._all.add(connection)
                return connection
            connection.close()  # closed by the server at once, or the sender was closed
            kind = "reset"
        self._size -= 1
        self._grant()
        return Outcome(monotonic_ns(), error=kind)

    def _release(self, connection: Http1Connection) -> None:
        """A connection that finished its request: to the next waiter, else to the idle list."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle = True
        self._idle.append(connection)

    def _forget(self, connection: Http1Connection) -> None:
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


def _expire_waiter(waiter: asyncio.Future[Http1Connection | Outcome | None]) -> None:
    if not waiter.done():
        waiter.set_result(Outcome(monotonic_ns(), error="timeout"))
