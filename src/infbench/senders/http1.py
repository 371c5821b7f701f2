"""HTTP/1.1 on the wire for the fast sender: requests rendered to bytes, answers parsed.

The engine hands the same ``PreparedRequest`` objects again and again (a dataset's rows are
prepared before the run), so each is rendered once and its bytes kept: sending is then a
dictionary look-up and a socket write. The request line, Host, User-Agent, Accept and the
framing header are ours; the scenario's own framing headers never reach the wire. Each
connection parses its answers with httptools (llhttp) and settles the request it carries.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import sys
from collections.abc import Callable
from time import monotonic_ns
from typing import Protocol, cast
from urllib.parse import quote

import httptools

from infbench.errors import UsageError
from infbench.senders.base import (
    USER_AGENT,
    ReadNotice,
    StreamReader,
    check_base_url,
    streamed_outcome,
)
from infbench.wire import ErrorKind, Outcome, PreparedRequest, classify_status

__all__ = ["DIRECT", "Http1Connection", "Http1Encoder", "Settlement", "framing", "parse_base"]

if sys.platform == "linux":
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # == SIOCOUTQ: bytes sent but not yet acknowledged
else:  # pragma: no cover - elsewhere only a pending socket error tells
    _OUTQ = None

_PATH_SAFE = "/:@!$&'()*+,;=?#[]%~"
_WIRE_CACHE_MAX = 65_536  # distinct requests kept encoded; beyond that, encoded per send
_INLINE_BODY_MAX = 8 * 1024  # bodies up to this size are cached joined to their head
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # ours, never the request's
_RAW_HEAD_MAX = 65_536  # bytes of an answer's head kept for reading its framing
_HEAD_END = re.compile(rb"\r?\n\r?\n")  # llhttp takes bare LF line ends too
_LINE_END = re.compile(rb"\r?\n")

# (request, bytes to write, body written separately or None, is HEAD)
_Wire = tuple[PreparedRequest, bytes, bytes | None, bool]


class Http1Encoder:
    """Bytes to write for each request to one base URL (http:// only)."""

    def __init__(self, base_url: str) -> None:
        self.host, self.port, self.host_header, self.base_path = parse_base(base_url)
        self._wire: dict[int, _Wire] = {}

    def encode(self, request: PreparedRequest) -> tuple[bytes, bytes | None, bool]:
        """(bytes to write, a large body written after them or None, is HEAD)."""
        wire = self._wire.get(id(request))
        if wire is None or wire[0] is not request:
            wire = self._render(request)
        return wire[1], wire[2], wire[3]

    def _render(self, request: PreparedRequest) -> _Wire:
        for name, value in request.headers:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise UsageError(
                    f"request header {name!r} contains a line break",
                    hint="remove CR and LF from request.headers in the scenario",
                )
        target = self.base_path + quote(request.path, safe=_PATH_SAFE)
        if not target.startswith("/"):
            target = "/" + target
        given = {name.lower() for name, _ in request.headers}
        lines = [f"{request.method} {target} HTTP/1.1"]
        if "host" not in given:
            lines.append(f"Host: {self.host_header}")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in given:
            lines.append("Accept: */*")
        lines.extend(f"{n}: {v}" for n, v in request.headers if n.lower() not in _FRAMING)
        body = request.body
        if body is not None or request.method not in _NO_BODY_METHODS:
            lines.append(f"Content-Length: {len(body) if body else 0}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        rest = None
        if body:
            if len(body) <= _INLINE_BODY_MAX:
                data += body
            else:
                rest = body  # not copied into the cache: datasets can hold large bodies
        wire = (request, data, rest, request.method == "HEAD")
        if len(self._wire) < _WIRE_CACHE_MAX:
            self._wire[id(request)] = wire  # holds `request`, so its id cannot be reused
        return wire


def parse_base(base_url: str) -> tuple[str, int, str, str]:
    """(host to connect to, port, Host header, path prefix) of an http:// base URL."""
    parts = check_base_url(base_url)
    if parts.scheme == "https":
        raise UsageError(
            f"target URL {base_url!r} needs TLS, but the fast sender speaks plain HTTP/1.1; "
            "use client.sender: aiohttp for TLS",
            hint="set client.sender: aiohttp (or httpx) for https:// targets",
        )
    host_header = parts.netloc.rpartition("@")[2]
    return parts.hostname or "", parts.port or 80, host_header, parts.path.rstrip("/")


class Settlement(Protocol):
    """Where a connection puts the outcome of the request it carries: an asyncio future
    (a ``send`` awaiting it) or a callback (a request written at once); None means the
    request was refused on a stale connection and may be sent again."""

    def done(self) -> bool: ...

    def set_result(self, outcome: Outcome | None) -> None: ...


class _Direct:
    """The settlement of a request sent without a future: the pool's ``on_direct`` callback
    gets the outcome (the connection holds the rest)."""

    def done(self) -> bool:
        return False

    def set_result(self, outcome: Outcome | None) -> None:
        raise AssertionError("a DIRECT request is settled through on_direct")


DIRECT: Settlement = _Direct()


class _Stop(Exception):
    """Raised from a parser callback to stop parsing once the request has been settled."""


class Http1Connection(asyncio.Protocol):
    """One keep-alive connection; settles the request it carries."""

    __slots__ = (
        "bytes_in",
        "cap",
        "closed",
        "counted",
        "deadline",
        "first_byte_ns",
        "future",
        "head",
        "headers_done",
        "idle",
        "notice",
        "on_closed",
        "on_direct",
        "on_done",
        "parser",
        "raw_head",
        "reader",
        "refused",
        "request",
        "sized",
        "status",
        "transport",
        "used",
        "write_failed",
    )

    transport: asyncio.Transport

    def __init__(
        self,
        cap: int,
        on_closed: Callable[[Http1Connection], None],
        on_direct: Callable[[Http1Connection, Outcome | None], None],
        notice: ReadNotice | None = None,
    ) -> None:
        self.notice = notice if notice is not None else ReadNotice()
        self.on_closed = on_closed
        self.on_direct = on_direct  # the pool's, for requests sent with DIRECT
        self.cap = cap
        self.parser = httptools.HttpResponseParser(self)
        self.future: Settlement | None = None
        # What the pool keeps with a DIRECT request: the request itself (sent again when it
        # met a stale connection) and the caller's callback.
        self.request: PreparedRequest | None = None
        self.on_done: Callable[[Outcome], None] | None = None
        self.reader: StreamReader | None = None  # a streamed answer's, while it is read
        self.closed = self.counted = self.idle = False
        self.used = 0  # requests answered on this connection
        self.deadline = 0.0  # the loop time at which the request it carries times out
        self._reset_request(False)

    def _reset_request(self, head: bool) -> None:
        self.first_byte_ns = self.status = self.bytes_in = 0
        self.headers_done = self.refused = self.write_failed = self.sized = False
        self.head = head
        self.raw_head = b""  # the answer's first bytes, for the rare reads of its framing

    # --- driven by the sender -------------------------------------------------------------------

    def send(
        self,
        future: Settlement,
        data: bytes,
        rest: bytes | None,
        head: bool,
        deadline: float,
        reader: StreamReader | None = None,
    ) -> None:
        """Write a request; its outcome goes to ``future``, or to ``on_direct`` when that is
        ``DIRECT`` (no future, no settlement object: the connection is the request's state)."""
        self.future = future
        self.deadline = deadline
        self.reader = reader
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
            self.on_closed(self)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()
            self.on_closed(self)

    def _settle(self, outcome: Outcome | None) -> None:
        future = self.future
        if future is not None:
            self.future = None
            if future is DIRECT:
                self.on_direct(self, outcome)
            elif not future.done():  # it is cancelled when the request's task was
                future.set_result(outcome)

    def _fail(self, kind: ErrorKind) -> None:
        """End the request with ``kind`` and drop the connection (its state is unknown)."""
        self._settle(Outcome(monotonic_ns(), self.first_byte_ns, self.status, kind, self.bytes_in))
        self.abort()

    # --- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        notice = self.notice
        if notice.wanted:
            notice.notify()
        if self.future is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted
            return
        if not self.first_byte_ns:
            self.first_byte_ns = monotonic_ns()
            self.raw_head = data
        elif not self.headers_done and len(self.raw_head) < _RAW_HEAD_MAX:
            self.raw_head += data  # a head split over several reads
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("protocol")
        except httptools.HttpParserError as exc:
            if not isinstance(exc.__context__, _Stop):
                self._fail("protocol")  # bad status line, headers, length or chunk framing
        else:
            if not self.sized and self.headers_done and self.future is not None:
                self._check_size()

    def _check_size(self) -> None:
        """An answer still arriving after the read that completed its head: refused at once
        when its declared length is over the cap. (One that came whole never gets here.)"""
        self.sized = True
        known = framing(self.raw_head)
        if known is not None and known[0] > self.cap and self.status not in (204, 304):
            self._fail("too_large")

    def eof_received(self) -> bool:
        if self.future is None:
            self.close()  # the server ended an idle keep-alive connection
        elif not self.first_byte_ns and self.used:
            self.refused = _request_refused(self.transport)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed(self)
        if self.future is None:
            return
        if self.headers_done and framing(self.raw_head) == (-1, False):
            self._complete()  # a body delimited by the end of the connection (HTTP/1.0 style)
        elif not self.first_byte_ns and self.used and (self.refused or self.write_failed):
            self._settle(None)  # closed while idle, before the request: the sender retries
        else:
            self._fail("reset")

    # --- httptools callbacks --------------------------------------------------------------------
    # No on_header: llhttp then hands over no header at all (nginx sends five, each a call
    # and two bytes objects: 1 µs per answer). It frames the body itself; what needs the
    # framing (a HEAD answer, the size cap of an answer still arriving, a connection that ends
    # mid-body) reads it from the raw head.

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            return  # informational (100 Continue): the real answer follows
        self.status = status
        self.headers_done = True
        if self.head:  # llhttp cannot be told that a HEAD answer has no body
            known = framing(self.raw_head)
            keep_alive = known is not None and known[0] >= 0 and self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
            self._complete(keep_alive)
            raise _Stop

    def on_body(self, body: bytes) -> None:
        reader = self.reader
        self.bytes_in += len(body)
        if reader is not None:
            reader.feed(body, monotonic_ns())
            if reader.cut:  # a runaway line or event: dropped at its own, lower bound
                self._fail("too_large")
                raise _Stop
        if self.bytes_in > self.cap:
            self._fail("too_large")
            raise _Stop

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an informational answer: the real one follows
            return
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool = False) -> None:
        status = self.status
        if self.reader is not None:
            outcome = streamed_outcome(
                self.reader, monotonic_ns(), self.first_byte_ns, status, self.bytes_in
            )
        else:
            outcome = Outcome(
                monotonic_ns(), self.first_byte_ns, status, classify_status(status), self.bytes_in
            )
        self.used += 1
        if not keep_alive:
            self.close()  # Connection: close, HTTP/1.0, or a body that ran to the end
        self._settle(outcome)


def framing(raw: bytes) -> tuple[int, bool] | None:
    """(Content-Length or -1, whether chunked) of the final answer whose head starts ``raw``,
    informational (1xx) heads before it skipped; None when that head is not all in ``raw``."""
    at = 0
    while True:
        end = _HEAD_END.search(raw, at)
        if end is None:
            return None
        lines = _LINE_END.split(raw[at : end.start()])
        status = lines[0][9:12]
        if not (status.isdigit() and status.startswith(b"1")):
            break
        at = end.end()
    declared, chunked = -1, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            declared = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return declared, chunked


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
