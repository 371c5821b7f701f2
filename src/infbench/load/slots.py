"""The connection cap as a counter the event loop can check without awaiting.

An ``asyncio.Semaphore`` can only be taken by awaiting it, which costs every arrival a task.
Here an arrival takes a free slot with one comparison and, when the sender has a connection
idle, is written at once. Only when every slot is taken does it wait: an open-loop arrival in
the ``ArrivalQueue`` (a plain FIFO, no task, future or timer of its own, so falling behind
costs no more per request than keeping up), a closed-loop worker on a future. Either waits
until its deadline, the request timeout counted from its intended time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

__all__ = ["ArrivalQueue", "Slots"]

Arrival = tuple[int, int, int]  # (phase, request number, intended ns)


class Slots:
    """``free`` slots; ``give`` hands a slot back to the longest waiter first."""

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[bool]] = deque()

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


class ArrivalQueue:
    """Open-loop arrivals waiting for a slot, oldest first, with one loop timer for the oldest
    one's deadline (intended + timeout): past it, an arrival is handed to ``drop``."""

    def __init__(
        self, timeout_ns: int, now_ns: Callable[[], int], drop: Callable[[int, int, int], None]
    ) -> None:
        self._timeout_ns, self._now, self._drop = timeout_ns, now_ns, drop
        self._waiting: deque[Arrival] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, phase: int, seq: int, intended_ns: int) -> None:
        self._waiting.append((phase, seq, intended_ns))
        if self._timer is None:
            self._arm()

    def pop(self) -> Arrival | None:
        """The oldest arrival still within its deadline (those past it dropped), or None."""
        self._drop_expired()
        return self._waiting.popleft() if self._waiting else None

    def clear(self) -> None:
        """Forget every waiting arrival (they are counted as abandoned by the caller)."""
        self._waiting.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        deadline_ns = self._waiting[0][2] + self._timeout_ns
        self._timer = asyncio.get_running_loop().call_later(
            max(deadline_ns - self._now(), 0) / 1e9, self._expire
        )

    def _expire(self) -> None:
        # Armed for an arrival that may have been sent since: then it checks the next oldest.
        self._timer = None
        self._drop_expired()
        if self._waiting:
            self._arm()

    def _drop_expired(self) -> None:
        waiting = self._waiting
        while waiting and self._now() - waiting[0][2] >= self._timeout_ns:
            self._drop(*waiting.popleft())
