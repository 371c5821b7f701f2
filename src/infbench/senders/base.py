"""The Sender seam: what the engine asks of an HTTP client, and what it gets back.

The engine stamps ``intended`` and ``sent``; a sender stamps ``first_byte`` and ``done`` with
``time.monotonic_ns()`` and classifies how the request ended. All senders classify failures
with the same names (DESIGN §5), so results do not depend on which client was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "ERROR_KINDS",
    "ErrorKind",
    "Outcome",
    "PreparedRequest",
    "Sender",
    "SenderOptions",
    "classify_status",
]

ErrorKind = Literal[
    "timeout", "connect", "reset", "protocol", "http_4xx", "http_5xx", "too_large", "dropped"
]
ERROR_KINDS: tuple[ErrorKind, ...] = (
    "timeout",
    "connect",
    "reset",
    "protocol",
    "http_4xx",
    "http_5xx",
    "too_large",
    "dropped",
)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One concrete request; ``path`` is appended to the target's base URL."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(slots=True)
class Outcome:
    """How one request ended. ``status`` is 0 when no response arrived."""

    done_ns: int
    first_byte_ns: int = 0
    status: int = 0
    error: ErrorKind | None = None
    bytes_in: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class SenderOptions:
    base_url: str
    connections: int = 64
    timeout_s: float = 30.0
    max_response_bytes: int = 64 * 1024 * 1024
    http2: bool = False
    verify_tls: bool = True
    extra: dict[str, str] = field(default_factory=dict)


class Sender(Protocol):
    """An HTTP client driven by the engine. ``send`` never raises for a failed request:
    every failure becomes an ``Outcome`` with an ``error`` kind."""

    name: str

    async def open(self) -> None: ...

    async def send(self, request: PreparedRequest) -> Outcome: ...

    async def close(self) -> None: ...


def classify_status(status: int) -> ErrorKind | None:
    """HTTP status to error kind: 4xx and 5xx are failures, everything else succeeded."""
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return None
