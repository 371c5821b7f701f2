"""The default sender: one aiohttp ClientSession over a capped keep-alive pool (DESIGN §6).

Choices that keep the measurement honest:

- No ``Accept-Encoding`` is added and nothing is decompressed, so ``bytes_in`` counts the body
  bytes that crossed the wire, as with the httpx sender.
- Redirects are not followed: a 3xx is the answer of the endpoint under test.
- aiohttp's silent retry of idempotent requests on a reused connection is switched off: it
  would hide a server's resets and send the request twice, and only for GET-like methods.
- The body is read under a cap; an oversized answer is cut off and its connection closed.
"""

from __future__ import annotations

import asyncio
from time import monotonic_ns
from urllib.parse import quote

import aiohttp
from yarl import URL

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

__all__ = ["AiohttpSender"]

_PATH_SAFE = "/:@!$&'()*+,;=?#[]%~"
_READ_CHUNK = 256 * 1024
_READ_WHOLE_MAX = 1024 * 1024


class AiohttpSender:
    name = "aiohttp"

    def __init__(self, options: SenderOptions) -> None:
        self.options = options
        self._base = _base_url(options.base_url)
        self._cap = options.max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._urls = UrlCache(self._url)

    async def open(self) -> None:
        options = self.options
        connector = aiohttp.TCPConnector(
            limit=options.connections,
            limit_per_host=options.connections,
            ttl_dns_cache=300,
            ssl=options.verify_tls,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=options.timeout_s),
            headers={"User-Agent": USER_AGENT},
            skip_auto_headers=("Accept-Encoding",),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # Private switch, hence the guard: see the module docstring for why retries are off.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, request: PreparedRequest) -> Outcome:
        session = self._session
        if session is None:
            raise RuntimeError("AiohttpSender.send() before open()")
        url = self._urls.get(request.path)
        first_byte_ns = status = bytes_in = 0
        try:
            async with session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
            ) as response:
                first_byte_ns = monotonic_ns()
                status = response.status
                reader = new_reader(self.options)
                if reader is None:
                    bytes_in = await self._read(response)
                else:
                    bytes_in = await self._read_stream(response, reader)
                done_ns = monotonic_ns()
        except TooLarge as exc:
            return Outcome(monotonic_ns(), first_byte_ns, status, "too_large", exc.bytes_in)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return Outcome(monotonic_ns(), first_byte_ns, status, _classify(exc), bytes_in)
        return answer_outcome(reader, done_ns, first_byte_ns, status, bytes_in)

    async def _read_stream(self, response: aiohttp.ClientResponse, reader: StreamReader) -> int:
        """Feed each piece of the body to ``reader`` as it arrives, stamped; under the cap."""
        total = 0
        async for piece in response.content.iter_any():
            reader.feed(piece, monotonic_ns())
            total += len(piece)
            if total > self._cap or reader.cut:  # cut: a runaway line or event
                response.close()
                raise TooLarge(total)
        return total

    async def _read(self, response: aiohttp.ClientResponse) -> int:
        """Read the body under the cap; returns its length in bytes."""
        cap = self._cap
        length = response.content_length
        if length is not None:
            if length > cap and has_body(response.method, response.status):
                response.close()
                raise TooLarge(0)
            if length <= _READ_WHOLE_MAX:
                # The parser stops at Content-Length, so this read is bounded: the fast path.
                return len(await response.read())
        # Larger or unannounced bodies are counted chunk by chunk and dropped, so memory stays
        # bounded by the chunk size rather than by max_response_bytes times the connections.
        total = 0
        content = response.content
        while chunk := await content.read(_READ_CHUNK):
            total += len(chunk)
            if total > cap:
                response.close()  # drops the connection rather than draining it
                raise TooLarge(total)
        return total

    def _url(self, path: str) -> URL:
        # Paths from RequestFactory are already encoded; encoding again only touches what may
        # not stand in a URL, and encoded=True stops yarl from re-normalising the path.
        return URL(self._base + quote(path, safe=_PATH_SAFE), encoded=True)


def _base_url(base_url: str) -> str:
    check_base_url(base_url)
    return str(URL(base_url)).rstrip("/")


def _classify(exc: BaseException) -> ErrorKind:
    """aiohttp's exceptions to DESIGN §5's error kinds (the httpx sender mirrors this)."""
    # Before the connection errors: aiohttp's timeouts subclass ServerConnectionError.
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"  # refused, DNS, TLS handshake: no connection was made
    if isinstance(exc, aiohttp.ClientPayloadError):
        # The connection dropped before the body was complete: the peer went away mid-answer.
        # Anything else here (bad chunk framing, bad encoding) is a malformed response.
        return "reset" if "not completed" in str(exc) else "protocol"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol"  # bad status line, headers or Content-Length
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return "reset"  # server disconnected, connection reset, broken pipe
    if isinstance(exc, aiohttp.ClientError):
        return "protocol"
    return "connect"  # any other OSError comes from setting up the socket
