"""Loop lag: how late a generator's event loop serves a 1 ms timer (DESIGN §5).

Send lag sees a generator that sends late; it cannot see one that *reads* late, as with streams
or a closed loop, where no schedule says when an answer's bytes should have been read. A timer
due every millisecond can: the loop serves it between the same callbacks that read the sockets,
so its lateness is how long bytes that had arrived waited for the loop (Node's
``monitorEventLoopDelay`` measures the same). One sample per time the timer is served: the
lateness of the earliest expiry not served yet, so a loop blocked for 50 ms gives one 50 ms
sample, not fifty.

The timer is a periodic timerfd (to the microsecond, no re-arming call per tick); without one
(not Linux) a loop timer re-armed each tick, whose millisecond rounding shows as up to 1 ms of
lag. Samples (ns) go to the recorder with the stamps at each hand-over, as segments of their
phase (``StampBuffer.add_segment``): the recorder adds them to the phase's ``loop_lag``
histogram and to its second of the interval log.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from infbench.load.timerfd import TimerFd
from infbench.recorder.stamps import LOOP_LAG, StampBuffer
from infbench.schedule.arrivals import Schedule

__all__ = ["INTERVAL_NS", "LoopLagProbe"]

INTERVAL_NS = 1_000_000


class LoopLagProbe:
    """A 1 ms timer on the running loop; its lateness per phase, handed over with the stamps.

    ``phase_ends_ns``: each phase's end on the monotonic clock; samples after the last end
    (the drain) count in the last phase, those before ``start`` are not taken.
    """

    def __init__(self, stamps: StampBuffer, phase_ends_ns: Sequence[int]) -> None:
        self._stamps = stamps
        self._ends = list(phase_ends_ns)
        self._samples: array[int] = array("q")
        self._phase = 0
        self._first_ns = 0  # the due time of the first sample held
        self._due_ns = 0  # the next expiry not yet served
        self._timer: TimerFd | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def started(
        cls, loop: asyncio.AbstractEventLoop, stamps: StampBuffer, schedule: Schedule, t0_ns: int
    ) -> LoopLagProbe:
        """A probe running on ``loop`` from the run's start, its phases those of ``schedule``."""
        ends = list(accumulate(int(plan.duration_s * 1e9) for plan in schedule.phases))
        probe = cls(stamps, [t0_ns + end for end in ends])
        probe.start(loop, t0_ns)
        return probe

    def start(self, loop: asyncio.AbstractEventLoop, start_ns: int) -> None:
        self._loop = loop
        self._due_ns = max(start_ns, time.monotonic_ns()) + INTERVAL_NS
        self._timer = TimerFd.create()
        if self._timer is not None:
            self._timer.arm_every(self._due_ns, INTERVAL_NS)
            loop.add_reader(self._timer.fd, self._fired)
        else:
            self._handle = loop.call_later(INTERVAL_NS / 1e9, self._late_timer)

    def _fired(self) -> None:
        now = time.monotonic_ns()
        assert self._timer is not None
        count = self._timer.expirations()
        if count:
            self._record(now)
            self._due_ns += count * INTERVAL_NS

    def _late_timer(self) -> None:
        now = time.monotonic_ns()
        self._record(now)
        self._due_ns = now + INTERVAL_NS
        assert self._loop is not None
        self._handle = self._loop.call_later(INTERVAL_NS / 1e9, self._late_timer)

    def _record(self, now_ns: int) -> None:
        due = self._due_ns
        phase = min(bisect_right(self._ends, due), len(self._ends) - 1)
        if phase != self._phase:
            self.hand_over()
            self._phase = phase
        if not self._samples:
            self._first_ns = due
        self._samples.append(max(now_ns - due, 0))

    def hand_over(self) -> None:
        """The samples since the last hand-over, to the stamp buffer (before its own)."""
        if self._samples:
            self._stamps.add_segment(self._phase, self._first_ns, self._samples, LOOP_LAG)
            del self._samples[:]

    def stop(self) -> None:
        if self._timer is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.hand_over()
