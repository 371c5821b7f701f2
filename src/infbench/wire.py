"""What passes between the workload, the senders, the engine and the recorder.

A leaf: it imports nothing of infbench, so every step of the flow may depend on it without
depending on each other. ``PreparedRequest`` goes in, ``Outcome`` comes out; the error kinds are
the names of DESIGN §5, shared by every sender so results do not depend on the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ERROR_KINDS", "ErrorKind", "Outcome", "PreparedRequest", "classify_status"]

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


def classify_status(status: int) -> ErrorKind | None:
    """HTTP status to error kind: 4xx and 5xx are failures, everything else succeeded."""
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return None
