"""The engine's time: where it reads the monotonic clock and how it waits for a due time.

Injected so that tests run the engine in virtual time (tests/unit/test_engine.py). The engine's
coarser waits (the per-second ticker, the wait for a free connection, the drain's grace) are
event-loop timers, so a virtual clock comes with an event loop whose ``time()`` is its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SPIN_NS", "Clock", "MonotonicClock"]

# Event-loop timers have millisecond granularity (epoll and libuv both round to 1 ms). The
# dispatcher sleeps until this much before a due time and yields in a tight loop for the rest:
# send lag stays well under a millisecond while the polling costs ~0.2 ms of CPU per arrival.
SPIN_NS = 600_000


class Clock(Protocol):
    """Nanoseconds on one monotonic clock, and a wait that ends at a due time, not before.

    ``spin_ns`` is the time spent polling instead of sleeping: CPU burnt on purpose, which the
    generator's busy CPU figure leaves out.
    """

    spin_ns: int

    def now_ns(self) -> int: ...

    async def sleep_until(self, due_ns: int) -> None:
        """Return at ``due_ns`` or just after; at once, without yielding, when it has passed."""


class MonotonicClock:
    """Real time: sleeps until ``SPIN_NS`` before the due time, then polls until it."""

    # The builtin itself, not a method wrapping it: the engine reads the clock several times
    # per request.
    now_ns = staticmethod(time.monotonic_ns)

    def __init__(self) -> None:
        self.spin_ns = 0

    async def sleep_until(self, due_ns: int) -> None:
        wait = due_ns - time.monotonic_ns()
        if wait > SPIN_NS:
            await asyncio.sleep((wait - SPIN_NS) / 1e9)
        spin_start = time.monotonic_ns()
        while time.monotonic_ns() < due_ns:
            await asyncio.sleep(0)
        self.spin_ns += time.monotonic_ns() - spin_start
