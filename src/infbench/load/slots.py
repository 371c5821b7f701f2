"""The connection cap as a counter the event loop can check without awaiting.

An ``asyncio.Semaphore`` can only be taken by awaiting it, which costs every arrival a task.
Here an arrival takes a free slot with one comparison and, when the sender has a connection
idle, is written at once; only when every slot is taken does it queue, as a future with a
deadline (the request timeout, counted from its intended time).
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Slots"]


class Slots:
    """``free`` slots; ``give`` hands a slot back to the longest waiter first."""

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def waiting(self) -> bool:
        """Whether anyone waits for a slot (a closed-loop worker, a request on another sender)."""
        return bool(self._waiters)

    def try_take(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def take(self, timeout_s: float) -> bool:
        """A slot within ``timeout_s``, or False once it has passed."""
        if self.try_take():
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(max(timeout_s, 0.0), _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.give()  # handed over just before the cancel: pass it on
            raise
        finally:
            timer.cancel()

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.free += 1


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
