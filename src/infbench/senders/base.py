"""The Sender seam: what the engine asks of an HTTP client, and what every client shares.

The engine stamps ``intended`` and ``sent``; a sender stamps ``first_byte`` and ``done`` with
``time.monotonic_ns()`` and classifies how the request ended (the kinds of ``wire.py``). The
checks every sender makes alike live here: the base URL, the response-size cap, which answers
carry a body, and the User-Agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import SplitResult, urlsplit

from infbench import __version__
from infbench.errors import UsageError
from infbench.senders.streams import SseReader, TextStreamReader
from infbench.wire import TOKEN_SOURCES, Outcome, PreparedRequest, classify_status

StreamReader = SseReader | TextStreamReader

__all__ = [
    "USER_AGENT",
    "ReadNotice",
    "Sender",
    "SenderOptions",
    "StreamReader",
    "TooLarge",
    "UrlCache",
    "answer_outcome",
    "check_base_url",
    "has_body",
    "new_reader",
    "streamed_outcome",
]

USER_AGENT = f"infbench/{__version__}"
URL_CACHE_MAX = 65_536  # distinct paths remembered; beyond that URLs are built per request

U = TypeVar("U")


class UrlCache(Generic[U]):
    """Each path's URL object built once: building one (parsing, quoting) costs more than the
    dict look-up, and a scenario sends the same few paths again and again."""

    def __init__(self, build: Callable[[str], U]) -> None:
        self._build = build
        self._urls: dict[str, U] = {}

    def get(self, path: str) -> U:
        url = self._urls.get(path)
        if url is None:
            url = self._build(path)
            if len(self._urls) < URL_CACHE_MAX:
                self._urls[path] = url
        return url


@dataclass(frozen=True, slots=True)
class SenderOptions:
    base_url: str
    connections: int = 64
    timeout_s: float = 30.0
    max_response_bytes: int = 64 * 1024 * 1024
    http2: bool = False
    verify_tls: bool = True
    # Open every connection before the run (fast sender): a burst at the start then finds
    # them ready. Off for one-off use, where a connection is opened when first needed.
    preopen: bool = False
    # request.api of a streamed answer (openai-chat, openai-completions, text-stream): the
    # body is read chunk by chunk and its tokens stamped (DESIGN §5b); "" for plain HTTP.
    stream: str = ""
    # Counts a streamed answer's output tokens when the server sends no usage (a tokenizer).
    count_tokens: Callable[[str], int] | None = None
    # Keep each streamed answer's text in its Outcome (a conversation's next turn sends it).
    keep_text: bool = False


class Sender(Protocol):
    """An HTTP client driven by the engine. ``send`` never raises for a failed request:
    every failure becomes an ``Outcome`` with an ``error`` kind."""

    name: str

    async def open(self) -> None: ...

    async def send(self, request: PreparedRequest) -> Outcome: ...

    async def close(self) -> None: ...


def _nobody() -> None:
    return None


class ReadNotice:
    """How a sender tells the loop-lag probe that it read from a socket (DESIGN §5).

    The probe sets ``wanted`` when it wants to hear of the next read (its timer slows down
    while the loop reads nothing); the sender's read path tests it on every read, a single
    attribute load, and calls ``notify`` once when it is set. A sender that has one offers it
    as ``read_notice`` (the fast sender); for the others the probe's timer never slows down.
    """

    __slots__ = ("notify", "wanted")

    def __init__(self) -> None:
        self.wanted = False
        self.notify: Callable[[], None] = _nobody


class TooLarge(Exception):
    """A response passed ``max_response_bytes``; ``bytes_in`` is what had been read by then."""

    def __init__(self, bytes_in: int) -> None:
        super().__init__(bytes_in)
        self.bytes_in = bytes_in


def new_reader(options: SenderOptions) -> StreamReader | None:
    """A reader for one streamed answer, or None for plain HTTP."""
    if not options.stream:
        return None
    if options.stream == "text-stream":
        return TextStreamReader(options.count_tokens, options.keep_text)
    return SseReader(options.stream, options.count_tokens, options.keep_text)  # type: ignore[arg-type]


def streamed_outcome(
    reader: StreamReader, done_ns: int, first_byte_ns: int, status: int, bytes_in: int
) -> Outcome:
    """The outcome of a complete answer read by ``reader``: an HTTP error first, else how
    the stream ended (cut short, an error event, a broken frame)."""
    error = classify_status(status) or reader.end()
    return Outcome(
        done_ns, first_byte_ns, status, error, bytes_in,
        reader.first_token_ns, reader.last_token_ns, reader.chunks, reader.input_tokens,
        reader.output_tokens, TOKEN_SOURCES.index(reader.tokens_source), reader.gaps,
        reader.text, reader.token_gaps, reader.tokenizer_tokens,
    )  # fmt: skip


def answer_outcome(
    reader: StreamReader | None, done_ns: int, first_byte_ns: int, status: int, bytes_in: int
) -> Outcome:
    """The outcome of an answer read to its end: streamed (``reader``) or plain."""
    if reader is not None:
        return streamed_outcome(reader, done_ns, first_byte_ns, status, bytes_in)
    return Outcome(done_ns, first_byte_ns, status, classify_status(status), bytes_in)


def has_body(method: str, status: int) -> bool:
    """HEAD and 304 answers declare the length of a body they never send."""
    return method != "HEAD" and status != 304


def check_base_url(base_url: str) -> SplitResult:
    """The parts of an http:// or https:// URL with a host; a UsageError naming it otherwise."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # a malformed port raises only when read
    except (ValueError, TypeError) as exc:
        raise UsageError(f"target URL {base_url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"target URL {base_url!r} must be http:// or https:// with a host",
            hint="e.g. http://127.0.0.1:3000",
        )
    return parts
