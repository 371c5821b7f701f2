"""Both senders against the fake server: stamps, status, and every error kind of DESIGN §5.

Each case runs for aiohttp, httpx and fast: they must classify the same failure the same way.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Any

import pytest

from fakeserver import FakeServer, free_port
from infbench.errors import UsageError
from infbench.senders import make_sender
from infbench.senders.base import SenderOptions
from infbench.wire import Outcome, PreparedRequest

SENDERS = ["aiohttp", "httpx", "fast"]
GET = PreparedRequest("GET", "/x")


async def _send(
    name: str, url: str, requests: list[PreparedRequest], concurrent: bool, **options: Any
) -> list[Outcome]:
    sender = make_sender(name, SenderOptions(base_url=url, **options))
    await sender.open()
    try:
        if concurrent:
            return list(await asyncio.gather(*(sender.send(r) for r in requests)))
        return [await sender.send(r) for r in requests]
    finally:
        await sender.close()


def send(
    name: str,
    url: str,
    request: PreparedRequest = GET,
    n: int = 1,
    concurrent: bool = False,
    **options: Any,
) -> list[Outcome]:
    return asyncio.run(_send(name, url, [request] * n, concurrent, **options))


@pytest.fixture(params=SENDERS)
def sender_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_ok_with_ordered_stamps_and_body_size(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(body=b"y" * 1234, delay_s=0.01)
    before = time.monotonic_ns()
    (outcome,) = send(sender_name, fake_server.url)
    assert outcome.ok and outcome.status == 200 and outcome.error is None
    assert before < outcome.first_byte_ns <= outcome.done_ns <= time.monotonic_ns()
    assert outcome.first_byte_ns - before >= 10_000_000  # the server's delay is inside
    assert outcome.bytes_in == 1234


def test_sends_method_path_headers_and_body(sender_name: str, fake_server: FakeServer) -> None:
    request = PreparedRequest(
        "POST",
        "/classify?q=a%20b",
        (("Content-Type", "application/json"), ("X-Key", "v")),
        b'{"text":"hi"}',
    )
    (outcome,) = send(sender_name, fake_server.url, request)
    assert outcome.ok
    received = fake_server.last_request
    assert received is not None
    assert (received.method, received.target, received.body) == (
        "POST",
        "/classify?q=a%20b",
        b'{"text":"hi"}',
    )
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-key"] == "v"
    assert received.headers["user-agent"].startswith("infbench/")
    assert "accept-encoding" not in received.headers  # bytes_in counts wire bytes
    assert fake_server.count("/classify") == 1


@pytest.mark.parametrize(("status", "kind"), [(404, "http_4xx"), (503, "http_5xx"), (302, None)])
def test_status_classes(
    sender_name: str, fake_server: FakeServer, status: int, kind: str | None
) -> None:
    fake_server.set(status=status)
    (outcome,) = send(sender_name, fake_server.url)
    assert (outcome.status, outcome.error) == (status, kind)
    assert outcome.first_byte_ns > 0 and outcome.bytes_in == 2


def test_timeout_fires_on_time(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(delay_s=5.0)
    start = time.monotonic()
    (outcome,) = send(sender_name, fake_server.url, timeout_s=0.3)
    elapsed = time.monotonic() - start
    assert outcome.error == "timeout" and outcome.status == 0
    assert elapsed >= 0.29  # never early; and long before the answer, 5 s away (no 200)


def test_refused_port_is_connect(sender_name: str) -> None:
    (outcome,) = send(sender_name, f"http://127.0.0.1:{free_port()}")
    assert (outcome.error, outcome.status, outcome.first_byte_ns) == ("connect", 0, 0)


def test_reset_without_answer(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(reset=1.0)
    (outcome,) = send(sender_name, fake_server.url)
    assert (outcome.error, outcome.status) == ("reset", 0)


def test_resets_are_counted_not_retried(sender_name: str, fake_server: FakeServer) -> None:
    """aiohttp would silently resend a GET on a reused connection; half must fail, once each."""
    fake_server.set(reset=0.5)
    outcomes = send(sender_name, fake_server.url, n=20)
    assert [o.error for o in outcomes] == [None, "reset"] * 10
    assert fake_server.count() == 20


def test_connection_closed_mid_body_is_reset(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(truncate=1.0, body=b"z" * 5000)
    (outcome,) = send(sender_name, fake_server.url)
    assert (outcome.error, outcome.status) == ("reset", 200)


def test_garbage_status_line_is_protocol(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(malformed=1.0)
    (outcome,) = send(sender_name, fake_server.url)
    assert outcome.error == "protocol"


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_body_is_too_large_and_drops_connection(
    sender_name: str, fake_server: FakeServer, chunked: bool
) -> None:
    fake_server.set(body_size=300_000, chunked=chunked)
    outcomes = send(sender_name, fake_server.url, n=3, max_response_bytes=100_000)
    assert [(o.error, o.status) for o in outcomes] == [("too_large", 200)] * 3
    assert all(o.bytes_in <= 300_000 for o in outcomes)
    assert fake_server.connections_opened == 3  # never reused after being cut off


def test_body_at_the_cap_is_ok(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(body_size=100_000, chunked=True)
    (outcome,) = send(sender_name, fake_server.url, max_response_bytes=100_000)
    assert outcome.ok and outcome.bytes_in == 100_000


def test_head_declaring_a_large_body_is_ok(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(body_size=300_000)
    request = PreparedRequest("HEAD", "/x")
    (outcome,) = send(sender_name, fake_server.url, request, max_response_bytes=1000)
    assert (outcome.error, outcome.status, outcome.bytes_in) == (None, 200, 0)


def test_keep_alive_reuses_one_connection(sender_name: str, fake_server: FakeServer) -> None:
    outcomes = send(sender_name, fake_server.url, n=50)
    assert all(o.ok for o in outcomes)
    assert fake_server.connections_opened == 1


def test_connection_cap_is_respected(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(delay_s=0.02)
    outcomes = send(sender_name, fake_server.url, n=40, concurrent=True, connections=4)
    assert all(o.ok for o in outcomes)
    assert fake_server.max_open <= 4
    assert fake_server.max_in_flight == 4


def test_cancellation_propagates(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.set(delay_s=5.0)

    async def scenario() -> None:
        sender = make_sender(sender_name, SenderOptions(base_url=fake_server.url))
        await sender.open()
        try:
            task = asyncio.create_task(sender.send(GET))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await sender.close()

    asyncio.run(scenario())


def test_stall_holds_requests_until_it_ends(sender_name: str, fake_server: FakeServer) -> None:
    fake_server.stall_for(0.3)
    start = time.monotonic_ns()
    outcomes = send(sender_name, fake_server.url, n=3, concurrent=True)
    assert all(o.ok for o in outcomes)
    assert all(o.done_ns - start >= 0.25e9 for o in outcomes)
    later = send(sender_name, fake_server.url)[0]
    assert later.ok and fake_server.count() == 4  # the stall ended: the next one is answered


# --- construction errors ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["curl", "Fast"])
def test_unknown_sender_names_the_key_and_choices(name: str) -> None:
    with pytest.raises(UsageError, match=r"client\.sender.*aiohttp, httpx, fast"):
        make_sender(name, SenderOptions(base_url="http://127.0.0.1:1"))


@pytest.mark.parametrize("url", ["ftp://host/", "127.0.0.1:3000", "http://"])
def test_bad_base_url(sender_name: str, url: str) -> None:
    with pytest.raises(UsageError, match="target URL"):
        make_sender(sender_name, SenderOptions(base_url=url))


@pytest.mark.skipif(importlib.util.find_spec("h2") is not None, reason="h2 is installed")
def test_http2_without_h2_says_how_to_install() -> None:
    with pytest.raises(UsageError, match="pip install h2"):
        make_sender("httpx", SenderOptions(base_url="http://127.0.0.1:1", http2=True))


# --- the fake server's own knobs ----------------------------------------------------------------


def test_status_cycle_and_counts(fake_server: FakeServer) -> None:
    fake_server.set(status=[200, 200, 503])
    fake_server.route("/readyz", status=204, body=b"")
    outcomes = send("aiohttp", fake_server.url, n=6)
    assert [o.status for o in outcomes] == [200, 200, 503] * 2
    assert send("aiohttp", fake_server.url, PreparedRequest("GET", "/readyz"))[0].status == 204
    assert fake_server.counts == {"/x": 6, "/readyz": 1}
    arrivals = fake_server.arrivals("/x")
    assert len(arrivals) == 6 and arrivals == sorted(arrivals)


def test_fake_server_answers_thousands_at_once(fake_server: FakeServer) -> None:
    outcomes = send("aiohttp", fake_server.url, n=3000, concurrent=True, connections=16)
    assert all(o.ok for o in outcomes)
    assert fake_server.count() == 3000
