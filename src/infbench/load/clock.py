"""The engine's time: where it reads the monotonic clock and how it waits for a due time.

Injected so that tests run the engine in virtual time (tests/unit/test_engine.py). The engine's
coarser waits (the per-second ticker, the wait for a free connection, the drain's grace) are
event-loop timers, so a virtual clock comes with an event loop whose ``time()`` is its own.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from infbench.load.timerfd import TimerFd

__all__ = ["COARSE_SPIN_NS", "SPIN_NS", "Clock", "MonotonicClock"]

# Woken by a kernel timer (timerfd) this long before a due time, the dispatcher polls for the
# rest. The margin covers getting back onto a core from idle, measured at 0.1-0.3 ms on a 2-core
# VM: with 0.1 ms, p50 lag was 78 µs; with 0.4 ms, p99 27 µs for ~0.2 ms of polling per arrival.
SPIN_NS = 400_000
# Without timerfd (not Linux) the wait is an event-loop timer, and those have millisecond
# granularity (epoll and libuv both round to 1 ms): polling the last 0.6 ms keeps send lag
# well under a millisecond for ~0.2 ms of CPU per arrival.
COARSE_SPIN_NS = 600_000


class Clock(Protocol):
    """Nanoseconds on one monotonic clock, and a wait that ends at a due time, not before.

    ``spin_ns`` is the time spent polling instead of sleeping: CPU burnt on purpose, which the
    generator's busy CPU figure leaves out.
    """

    spin_ns: int

    def now_ns(self) -> int: ...

    async def sleep_until(self, due_ns: int) -> None:
        """Return at ``due_ns`` or just after; at once, without yielding, when it has passed."""

    def close(self) -> None:
        """Release what the waits hold (a timer file descriptor)."""


class MonotonicClock:
    """Real time: sleeps on a kernel timer until shortly before the due time, then polls.

    Every waiter (the open-loop dispatcher, closed-loop workers, phase edges) sits in one heap;
    a single timerfd, watched by the event loop, is armed for the earliest. Where timerfd is
    missing the wait falls back to the loop's own (millisecond) timers and a longer poll.
    """

    # The builtin itself, not a method wrapping it: the engine reads the clock several times
    # per request.
    now_ns = staticmethod(time.monotonic_ns)

    def __init__(self) -> None:
        self.spin_ns = 0
        self._timer = TimerFd.create()
        self._spin = SPIN_NS if self._timer is not None else COARSE_SPIN_NS
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties in the heap never compare futures
        self._armed_ns: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def sleep_until(self, due_ns: int) -> None:
        wake_ns = due_ns - self._spin
        if wake_ns > time.monotonic_ns():
            await self._sleep(wake_ns)
        spin_start = time.monotonic_ns()
        while time.monotonic_ns() < due_ns:
            await asyncio.sleep(0)
        self.spin_ns += time.monotonic_ns() - spin_start

    async def _sleep(self, wake_ns: int) -> None:
        if self._timer is None:
            await asyncio.sleep((wake_ns - time.monotonic_ns()) / 1e9)
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._watch(loop)
        waiter = loop.create_future()
        heapq.heappush(self._waiters, (wake_ns, next(self._order), waiter))
        if self._armed_ns is None or wake_ns < self._armed_ns:
            self._arm(wake_ns)
        await waiter  # a cancelled waiter stays in the heap and is skipped when its time comes

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._timer is not None
        if self._loop is not None:
            self._loop.remove_reader(self._timer.fd)
        self._loop, self._waiters, self._armed_ns = loop, [], None
        loop.add_reader(self._timer.fd, self._fired)

    def _arm(self, wake_ns: int) -> None:
        assert self._timer is not None
        self._timer.arm_at(wake_ns)
        self._armed_ns = wake_ns

    def _fired(self) -> None:
        assert self._timer is not None
        self._timer.clear()
        now = time.monotonic_ns()
        while self._waiters and self._waiters[0][0] <= now:
            waiter = heapq.heappop(self._waiters)[2]
            if not waiter.done():
                waiter.set_result(None)
        if self._waiters:
            self._arm(self._waiters[0][0])
        else:
            self._armed_ns = None

    def close(self) -> None:
        if self._timer is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._timer.fd)
        self._timer.close()
        self._timer, self._loop, self._spin = None, None, COARSE_SPIN_NS
