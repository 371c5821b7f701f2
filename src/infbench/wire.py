"""What passes between the workload, the senders, the engine and the recorder.

A leaf: it imports nothing of infbench, so every step of the flow may depend on it without
depending on each other. ``PreparedRequest`` goes in, ``Outcome`` comes out; the error kinds are
the names of DESIGN §5, shared by every sender so results do not depend on the client. The
stamp layout is what the event loop writes per request and the recorder reads in batches.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "BATCH_HEADER",
    "ERROR_CODES",
    "ERROR_KINDS",
    "STAMP",
    "STAMP_FIELDS",
    "TOKEN_SOURCES",
    "ErrorKind",
    "Outcome",
    "PreparedRequest",
    "classify_status",
]

# A stamp's error code is the index of its kind here plus one: kinds are only ever appended
# (``stream_error``: an error event inside a 200 streamed answer, senders/streams.py), so
# existing codes keep their meaning.
ErrorKind = Literal[
    "timeout",
    "connect",
    "reset",
    "protocol",
    "http_4xx",
    "http_5xx",
    "too_large",
    "dropped",
    "stream_error",
]
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One concrete request; ``path`` is appended to the target's base URL."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(slots=True)
class Outcome:
    """How one request ended. ``status`` is 0 when no response arrived.

    A streamed answer (DESIGN §5b) also carries the stamps of its first and last content
    chunks, their count, token counts with their source (``TOKEN_SOURCES``) and ``gaps``, the
    nanoseconds between consecutive content chunks (ITL); ``text`` only when kept
    (``SenderOptions.keep_text``: a conversation sends it back in its next turn).
    """

    done_ns: int
    first_byte_ns: int = 0
    status: int = 0
    error: ErrorKind | None = None
    bytes_in: int = 0
    first_token_ns: int = 0
    last_token_ns: int = 0
    chunks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_source: int = 0
    gaps: Sequence[int] = ()
    text: str | None = None  # the streamed answer, when the sender was asked to keep it
    token_gaps: Sequence[int] = ()  # each gap ÷ the tokens its later chunk carried (when known)
    # the local tokenizer's count of an answer whose output_tokens came from the server's usage
    # (the token audit, DESIGN §5b); -1 where the two were not both counted
    tokenizer_tokens: int = -1

    @property
    def ok(self) -> bool:
        return self.error is None


def classify_status(status: int) -> ErrorKind | None:
    """HTTP status to error kind: 4xx and 5xx are failures, everything else succeeded."""
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return None


# One request as the event loop records it: fixed-width integers, nothing formatted (DESIGN §1).
# Times are the loop's monotonic nanoseconds; 0 means "did not happen" (a dropped arrival was
# never sent, an answer may have no first byte). ``error`` is 0 for success, else the index of
# the kind in ERROR_KINDS plus one.
STAMP_FIELDS = (
    "seq",
    "phase",
    "intended_ns",
    "sent_ns",
    "first_byte_ns",
    "done_ns",
    "status",
    "error",
    "bytes_out",
    "bytes_in",
    "first_token_ns",
    "last_token_ns",
    "chunks",
    "input_tokens",
    "output_tokens",
    "tokens_source",
    "tokenizer_tokens",  # -1: not counted both ways (Outcome.tokenizer_tokens)
)
STAMP = struct.Struct("<17q")
# Where a streamed answer's token counts came from, by the stamp's tokens_source code.
TOKEN_SOURCES = ("", "usage", "tokenizer", "chunks")
ERROR_CODES: dict[ErrorKind | None, int] = {None: 0} | {
    kind: code for code, kind in enumerate(ERROR_KINDS, 1)
}
# Before each batch of stamps: the generator's clock at the hand-over, its running totals
# (arrivals offered, requests sent, requests in flight), so the recorder can cut seconds, and
# the number of int64 words of ITL gaps that follow the stamps as a message of their own.
BATCH_HEADER = struct.Struct("<5q")
