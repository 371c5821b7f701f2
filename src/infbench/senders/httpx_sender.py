"""The httpx sender: for HTTP/2 targets and users who want httpx (DESIGN §6).

It behaves like the aiohttp sender so results do not depend on the client (a streamed answer
is read piece by piece as httpx hands it over, raw, and stamped like theirs): no
``Accept-Encoding`` and no decoding (``bytes_in`` is wire bytes), no redirects, no proxies
from the environment, the same body cap, and one deadline for the whole request. httpx's own
timeouts are per operation (connect, each read, ...), so a server that trickles bytes would
never time out; ``asyncio.timeout`` (Python 3.11+) adds the total that aiohttp applies.

httpx is slow with many connections (its pool scans every connection per request): Limits and
Timeout are always set explicitly, and ``sniffio`` must be installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from time import monotonic_ns

import httpx

from infbench.errors import UsageError
from infbench.senders.base import (
    USER_AGENT,
    SenderOptions,
    StreamReader,
    TooLarge,
    UrlCache,
    answer_outcome,
    check_base_url,
    has_body,
    new_reader,
)
from infbench.wire import ErrorKind, Outcome, PreparedRequest

__all__ = ["HttpxSender"]

# httpcore/h11 messages for a peer that closed the connection before the answer was complete.
_DISCONNECTED = ("server disconnected", "peer closed")

if sys.version_info >= (3, 11):
    _deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10 relies on httpx's per-operation timeouts alone

    def _deadline(delay: float | None) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


class HttpxSender:
    name = "httpx"

    def __init__(self, options: SenderOptions) -> None:
        if options.http2:
            try:
                import h2  # noqa: F401  (httpx needs it for HTTP/2 and says so only at send)
            except ImportError:
                raise UsageError(
                    "client.http2 needs the `h2` package, which is not installed",
                    hint="pip install h2  (or set client.http2: false)",
                ) from None
        self.options = options
        self._base = _base_url(options.base_url)
        self._cap = options.max_response_bytes
        self._timeout_s = options.timeout_s
        self._client: httpx.AsyncClient | None = None
        self._urls = UrlCache(self._url)

    async def open(self) -> None:
        options = self.options
        client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=options.connections,
                max_keepalive_connections=options.connections,
            ),
            timeout=httpx.Timeout(options.timeout_s),
            http2=options.http2,
            verify=options.verify_tls,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        # httpx always offers compression; drop it so servers answer as they do for aiohttp.
        del client.headers["Accept-Encoding"]
        self._client = client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def send(self, request: PreparedRequest) -> Outcome:
        client = self._client
        if client is None:
            raise RuntimeError("HttpxSender.send() before open()")
        url = self._urls.get(request.path)
        first_byte_ns = status = bytes_in = 0
        try:
            async with _deadline(self._timeout_s):
                http_request = client.build_request(
                    request.method, url, headers=request.headers, content=request.body
                )
                response = await client.send(http_request, stream=True)
                try:
                    first_byte_ns = monotonic_ns()
                    status = response.status_code
                    reader = new_reader(self.options)
                    bytes_in = await self._read(response, reader)
                    done_ns = monotonic_ns()
                finally:
                    # Closing an unfinished response (too large, timed out) drops its connection.
                    await response.aclose()
        except TooLarge as exc:
            return Outcome(monotonic_ns(), first_byte_ns, status, "too_large", exc.bytes_in)
        except (httpx.TransportError, OSError, asyncio.TimeoutError) as exc:
            return Outcome(monotonic_ns(), first_byte_ns, status, _classify(exc), bytes_in)
        return answer_outcome(reader, done_ns, first_byte_ns, status, bytes_in)

    async def _read(self, response: httpx.Response, reader: StreamReader | None) -> int:
        """Read the raw body under the cap, feeding a streamed answer's pieces to ``reader``
        as they arrive, stamped; returns its length in bytes."""
        cap = self._cap
        length = _content_length(response.headers)
        if (
            length is not None
            and length > cap
            and has_body(response.request.method, response.status_code)
        ):
            raise TooLarge(0)
        total = 0
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if reader is not None:
                reader.feed(chunk, monotonic_ns())
                if reader.cut:  # a runaway line or event
                    raise TooLarge(total)
            if total > cap:
                raise TooLarge(total)
        return total

    def _url(self, path: str) -> httpx.URL:
        return httpx.URL(self._base + path)


def _content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        return None  # absent or malformed: the streaming cap still applies
    return int(value)


def _base_url(base_url: str) -> str:
    check_base_url(base_url)
    return str(httpx.URL(base_url)).rstrip("/")


def _classify(exc: BaseException) -> ErrorKind:
    """httpx's exceptions to DESIGN §5's error kinds, mirroring the aiohttp sender."""
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, httpx.ConnectError | httpx.ProxyError):
        return "connect"  # refused, DNS, TLS handshake: no connection was made
    if isinstance(exc, httpx.RemoteProtocolError):
        # httpcore reports a peer that hung up as a protocol error; it is a reset to us.
        message = str(exc).lower()
        return "reset" if message.startswith(_DISCONNECTED) else "protocol"
    if isinstance(exc, httpx.NetworkError | ConnectionError):
        return "reset"  # read/write failed on an open connection
    if isinstance(exc, httpx.TransportError):
        return "protocol"
    return "connect"  # any other OSError comes from setting up the socket
