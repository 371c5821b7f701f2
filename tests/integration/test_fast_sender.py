"""What only the fast sender has to get right: its own pool, keep-alive edge cases, refusals.

The contract it shares with the other senders (stamps, error kinds, caps) is tested in
test_senders.py. Cases the fake server has no knob for use ``RawServer`` below: a blocking
thread per connection whose answers are scripted byte by byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from fakeserver import FakeServer
from infbench.errors import UsageError
from infbench.senders import http1, make_sender
from infbench.senders.base import SenderOptions
from infbench.senders.fast_sender import sweep_interval
from infbench.wire import Outcome, PreparedRequest

GET = PreparedRequest("GET", "/x")
OK_KEEP_ALIVE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# answer(sock, index) writes the answer to request number `index`; False closes the socket.
Answer = Callable[[socket.socket, int], bool]


class RawServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with sock:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                with self._lock:
                    self.requests.append(head)
                    index = len(self.requests) - 1
                if not self.answer(sock, index):
                    return


@pytest.fixture
def raw_server() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def run(coro: Coroutine[Any, Any, Any], loop: str = "asyncio") -> Any:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(coro)
    return asyncio.run(coro)


async def _sequential(
    url: str, n: int, request: PreparedRequest = GET, **opts: Any
) -> list[Outcome]:
    sender = make_sender("fast", SenderOptions(base_url=url, **opts))
    await sender.open()
    try:
        return [await sender.send(request) for _ in range(n)]
    finally:
        await sender.close()


def sequential(url: str, n: int = 1, request: PreparedRequest = GET, **opts: Any) -> list[Outcome]:
    return list(run(_sequential(url, n, request, **opts)))


# --- response framing ---------------------------------------------------------------------------


def test_chunked_bodies_over_one_kept_alive_connection(fake_server: FakeServer) -> None:
    fake_server.set(chunked=True, body_size=200_000)  # four chunks of at most 64 KiB
    outcomes = sequential(fake_server.url, 3)
    assert [(o.ok, o.status, o.bytes_in) for o in outcomes] == [(True, 200, 200_000)] * 3
    assert fake_server.connections_opened == 1


def test_first_byte_is_the_first_response_byte_not_the_end_of_headers(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        time.sleep(0.3)
        sock.sendall(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.3)
        sock.sendall(b"5\r\nworld\r\n0\r\n\r\n")
        return True

    server = raw_server(answer)
    start = time.monotonic_ns()
    (outcome,) = sequential(server.url)
    assert outcome.ok and outcome.bytes_in == 10
    assert outcome.first_byte_ns - start < 250_000_000  # before the headers were complete
    assert outcome.done_ns - outcome.first_byte_ns >= 550_000_000


def test_http10_answers_close_the_connection(raw_server: Callable[[Answer], RawServer]) -> None:
    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True  # the server would keep it open: the client must not reuse it

    server = raw_server(answer)
    outcomes = sequential(server.url, 3)
    assert [(o.ok, o.bytes_in) for o in outcomes] == [(True, 2)] * 3
    assert server.connections == 3 and len(server.requests) == 3


def test_body_delimited_by_the_end_of_the_connection(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, ")
        sock.sendall(b"world")
        return False

    server = raw_server(answer)
    outcomes = sequential(server.url, 2)
    assert [(o.error, o.status, o.bytes_in) for o in outcomes] == [(None, 200, 12)] * 2


def test_an_informational_answer_then_a_body_ended_by_the_connection(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    """The head is read in pieces, after a 100 Continue: the framing is the final answer's."""

    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n")
        time.sleep(0.05)
        sock.sendall(b"Content-Type: text/plain\r\n\r\nhello")
        return False

    server = raw_server(answer)
    (outcome,) = sequential(server.url)
    assert (outcome.error, outcome.status, outcome.bytes_in) == (None, 200, 5)


def test_a_body_cut_short_of_its_length_is_a_reset(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        return False  # closed after 5 of the 10 bytes

    server = raw_server(answer)
    (outcome,) = sequential(server.url)
    assert (outcome.error, outcome.status, outcome.bytes_in) == ("reset", 200, 5)


def test_a_declared_length_over_the_cap_is_refused_without_reading_on(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    released = threading.Event()

    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n0123456789")
        released.wait(30)  # the rest never comes: only the header can tell
        return False

    server = raw_server(answer)
    try:
        (outcome,) = sequential(server.url, max_response_bytes=1 << 20, timeout_s=10)
    finally:
        released.set()
    # A sender that read on for the body would have ended at its timeout instead.
    assert (outcome.error, outcome.status) == ("too_large", 200) and outcome.bytes_in <= 10


def test_connection_close_is_honoured(fake_server: FakeServer) -> None:
    fake_server.set(close=True)
    outcomes = sequential(fake_server.url, 5)
    assert all(o.ok for o in outcomes)
    assert fake_server.count() == 5 and fake_server.connections_opened == 5


def test_head_then_get_on_the_same_connection(fake_server: FakeServer) -> None:
    async def scenario() -> list[Outcome]:
        sender = make_sender("fast", SenderOptions(base_url=fake_server.url))
        await sender.open()
        try:
            return [await sender.send(r) for r in (PreparedRequest("HEAD", "/x"), GET) * 2]
        finally:
            await sender.close()

    outcomes = run(scenario())
    assert [(o.ok, o.bytes_in) for o in outcomes] == [(True, 0), (True, 2)] * 2
    assert fake_server.connections_opened == 1


# --- keep-alive and retries ---------------------------------------------------------------------


def test_stale_keep_alive_is_retried_once_on_a_new_connection(
    raw_server: Callable[[Answer], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server closes every connection as it answers, without saying so: the next request
    is written on a connection the server had already closed (the EOF is read only after the
    write), so the server never read it."""
    refused: list[bool] = []
    original = http1._request_refused

    def spy(transport: asyncio.Transport) -> bool:
        refused.append(original(transport))
        return refused[-1]

    monkeypatch.setattr(http1, "_request_refused", spy)

    def answer(sock: socket.socket, index: int) -> bool:
        # Corked, the answer leaves with the FIN at close(): the server has closed before the
        # client can see the answer, so the race is lost the same way on every run.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        sock.sendall(OK_KEEP_ALIVE)
        return False

    server = raw_server(answer)
    outcomes = sequential(server.url, 20)  # asyncio's loop reads the EOF after the next write
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert len(server.requests) == 20  # exactly one request reached the server per send
    assert server.connections == 20
    assert refused == [True] * 19  # every reuse met the closed connection and was retried


def test_idle_connection_closed_by_the_server_is_not_reused(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    def answer(sock: socket.socket, index: int) -> bool:
        sock.sendall(OK_KEEP_ALIVE)
        time.sleep(0.02)
        return False

    server = raw_server(answer)

    async def scenario() -> list[Outcome]:
        sender = make_sender("fast", SenderOptions(base_url=server.url))
        await sender.open()
        try:
            outcomes = []
            for _ in range(3):
                outcomes.append(await sender.send(GET))
                await asyncio.sleep(0.1)  # the close arrives while the connection is idle
            return outcomes
        finally:
            await sender.close()

    outcomes = run(scenario())
    assert all(o.ok for o in outcomes)
    assert len(server.requests) == 3 and server.connections == 3


def test_a_request_the_server_read_and_hung_up_on_is_not_retried(
    raw_server: Callable[[Answer], RawServer],
) -> None:
    def answer(sock: socket.socket, index: int) -> bool:
        if index == 0:
            sock.sendall(OK_KEEP_ALIVE)
            return True
        time.sleep(0.05)  # read it, think, then close without a word
        return False

    server = raw_server(answer)
    outcomes = sequential(server.url, 2)
    assert [o.error for o in outcomes] == [None, "reset"]
    assert len(server.requests) == 2


# --- timeouts, cancellation and the pool -------------------------------------------------------


def test_timeout_closes_the_connection_and_the_next_request_works(
    fake_server: FakeServer,
) -> None:
    fake_server.route("/slow", delay_s=5.0)

    async def scenario() -> list[Outcome]:
        sender = make_sender("fast", SenderOptions(base_url=fake_server.url, timeout_s=0.2))
        await sender.open()
        try:
            slow = await sender.send(PreparedRequest("GET", "/slow"))
            return [slow, await sender.send(GET)]
        finally:
            await sender.close()

    slow, fast = run(scenario())
    assert (slow.error, slow.status) == ("timeout", 0)
    assert fast.ok and fast.bytes_in == 2
    assert fake_server.connections_opened == 2  # the timed-out one was not reused


def test_a_request_written_at_once_times_out_by_the_sweep(fake_server: FakeServer) -> None:
    """send_now has no timer of its own: the sender's sweep ends it, late by at most one
    sweep interval, and only it (its neighbour, answered, is untouched)."""
    fake_server.route("/slow", delay_s=5.0)
    timeout_s = 0.3

    async def scenario() -> tuple[list[Outcome], int]:
        sender = make_sender(
            "fast",
            SenderOptions(
                base_url=fake_server.url, timeout_s=timeout_s, connections=2, preopen=True
            ),
        )
        await sender.open()
        outcomes: list[Outcome] = []
        done = asyncio.Event()

        def on_done(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if len(outcomes) == 2:
                done.set()

        try:
            start = time.monotonic_ns()
            assert sender.send_now(PreparedRequest("GET", "/slow"), on_done)  # type: ignore[attr-defined]
            assert sender.send_now(GET, on_done)  # type: ignore[attr-defined]
            await asyncio.wait_for(done.wait(), 5.0)
            return outcomes, start
        finally:
            await sender.close()

    (fast, slow), start = run(scenario())
    assert fast.ok and slow.error == "timeout"
    waited_s = (slow.done_ns - start) / 1e9
    assert timeout_s <= waited_s < timeout_s + sweep_interval(timeout_s) + 0.5


def test_cancelled_request_closes_its_connection(fake_server: FakeServer) -> None:
    fake_server.route("/slow", delay_s=5.0)

    async def scenario() -> Outcome:
        sender = make_sender("fast", SenderOptions(base_url=fake_server.url, connections=1))
        await sender.open()
        try:
            task = asyncio.create_task(sender.send(PreparedRequest("GET", "/slow")))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await sender.send(GET)
        finally:
            await sender.close()

    assert run(scenario()).ok
    assert fake_server.connections_opened == 2


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_many_concurrent_requests_never_open_more_than_the_pool(
    fake_server: FakeServer, loop: str
) -> None:
    fake_server.set(delay_s=0.005)

    async def scenario() -> list[Outcome]:
        sender = make_sender("fast", SenderOptions(base_url=fake_server.url, connections=8))
        await sender.open()
        try:
            return list(await asyncio.gather(*(sender.send(GET) for _ in range(400))))
        finally:
            await sender.close()

    outcomes = run(scenario(), loop)
    assert all(o.ok for o in outcomes)
    assert fake_server.count() == 400
    assert fake_server.connections_opened <= 8 and fake_server.max_open <= 8
    assert fake_server.max_in_flight == 8


def test_waiting_for_a_connection_counts_against_the_timeout(fake_server: FakeServer) -> None:
    fake_server.set(delay_s=0.5)

    async def scenario() -> list[Outcome]:
        options = SenderOptions(base_url=fake_server.url, connections=1, timeout_s=0.2)
        sender = make_sender("fast", options)
        await sender.open()
        try:
            return list(await asyncio.gather(sender.send(GET), sender.send(GET)))
        finally:
            await sender.close()

    outcomes = run(scenario())
    assert [o.error for o in outcomes] == ["timeout", "timeout"]
    # Had the wait not counted, the second would have had the connection the first's timeout
    # freed, and the server would have seen it.
    assert fake_server.count() == 1


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_throughput_smoke_closed_loop(fake_server: FakeServer, loop: str) -> None:
    async def scenario() -> list[Outcome]:
        sender = make_sender("fast", SenderOptions(base_url=fake_server.url, connections=16))
        await sender.open()

        async def worker() -> list[Outcome]:
            return [await sender.send(GET) for _ in range(125)]

        try:
            batches = await asyncio.gather(*(worker() for _ in range(16)))
            return [outcome for batch in batches for outcome in batch]
        finally:
            await sender.close()

    outcomes = run(scenario(), loop)
    assert len(outcomes) == 2000 and all(o.ok for o in outcomes)
    assert fake_server.count() == 2000 and fake_server.connections_opened <= 16


# --- the request on the wire ------------------------------------------------------------------


def test_base_path_host_header_and_user_headers(fake_server: FakeServer) -> None:
    request = PreparedRequest(
        "POST", "/v1/predict", (("Content-Length", "999"), ("Accept", "application/json")), b"{}"
    )
    (outcome,) = sequential(fake_server.url + "/api/", 1, request)
    assert outcome.ok
    received = fake_server.last_request
    assert received is not None
    assert (received.target, received.body) == ("/api/v1/predict", b"{}")
    assert received.headers["host"] == fake_server.url.removeprefix("http://")
    assert received.headers["content-length"] == "2"  # framing is the sender's, not the user's
    assert received.headers["accept"] == "application/json"


def test_large_bodies_are_sent_whole(fake_server: FakeServer) -> None:
    body = bytes(range(256)) * 1000
    (outcome,) = sequential(fake_server.url, 1, PreparedRequest("PUT", "/blob", (), body))
    assert outcome.ok
    assert fake_server.last_request is not None and fake_server.last_request.body == body


# --- refusals -----------------------------------------------------------------------------------


def test_https_is_refused_pointing_to_aiohttp() -> None:
    message = "the fast sender speaks plain HTTP/1.1; use client.sender: aiohttp for TLS"
    with pytest.raises(UsageError, match=re.escape(message)):
        make_sender("fast", SenderOptions(base_url="https://example.com"))


def test_http2_is_refused_pointing_to_httpx() -> None:
    with pytest.raises(UsageError, match=re.escape("use client.sender: httpx with http2: true")):
        make_sender("fast", SenderOptions(base_url="http://127.0.0.1:1", http2=True))


def test_send_before_open_is_a_programming_error() -> None:
    sender = make_sender("fast", SenderOptions(base_url="http://127.0.0.1:1"))
    with contextlib.closing(asyncio.new_event_loop()) as loop, pytest.raises(RuntimeError):
        loop.run_until_complete(sender.send(GET))
