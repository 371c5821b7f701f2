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

**An idle loop's timer slows down.** Waking an idle process costs far more than serving a tick
of a busy one (30-50 µs of its CPU on a virtual machine, its caches gone cold: 3-5 % of a core
for a 1 ms timer alone, as much as reading 4,000 chunks a second). So where the sender offers a
``ReadNotice`` (the fast sender), a tick served on time with nothing read since the previous
one moves the timer to every ``SLOW_TICKS`` ms, and the first read after that brings the 1 ms
ticks back before anything it read is handled. The loop had nothing to read in between, so the
1 ms ticks the slow timer skipped are counted with the lateness of the tick that found the loop
idle: the histogram keeps one sample per millisecond the loop was free, as before. A hand-over
to the recorder (a pipe write that can block) brings the 1 ms ticks back too. What slowing
costs: a stall that begins while the timer is slow, in a callback that reads nothing, is seen
up to ``SLOW_TICKS`` - 1 ms short, unless it burns CPU, which the next read finds out from the
thread's CPU clock and records as one sample of that length.

Each process also counts its own samples per phase, to 10 µs (``p99_ms``): with several
generator processes the recorder merges all their samples, where one late process among
eight would sink under the p99 of the others; validity judges each process by its own.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, repeat

import numpy as np

from infbench.load.timerfd import TimerFd
from infbench.recorder.stamps import LOOP_LAG, StampBuffer
from infbench.results.percentile import bucket_percentiles
from infbench.schedule.arrivals import Schedule
from infbench.senders.base import ReadNotice

__all__ = ["INTERVAL_NS", "QUIET_NS", "SLOW_TICKS", "LoopLagProbe"]

INTERVAL_NS = 1_000_000
SLOW_TICKS = 8  # an idle loop's timer fires every 8 ms, until the next read
QUIET_NS = 100_000  # a tick served this early, nothing read since the last: the loop is idle
BUCKET_NS, BUCKETS = 10_000, 10_000  # this process's own count: 10 µs buckets, to 100 ms
_BUCKET_LOWS = np.arange(BUCKETS, dtype=np.int64) * BUCKET_NS
_BUCKET_HIGHS = _BUCKET_LOWS + BUCKET_NS  # each bucket's upper edge


class LoopLagProbe:
    """A 1 ms timer on the running loop; its lateness per phase, handed over with the stamps.

    ``phase_ends_ns``: each phase's end on the monotonic clock; samples after the last end
    (the drain) count in the last phase, those before ``start`` are not taken. ``notice``:
    the sender's read notice, without which the timer never slows down.
    """

    def __init__(
        self, stamps: StampBuffer, phase_ends_ns: Sequence[int], notice: ReadNotice | None = None
    ) -> None:
        self._stamps = stamps
        self._ends = list(phase_ends_ns)
        self._samples: array[int] = array("q")
        self._phase = 0
        self._first_ns = 0  # the due time of the first sample held
        self._due_ns = 0  # the first 1 ms tick neither sampled nor counted yet
        self._next_ns = 0  # the timer's next expiry (a 1 ms tick)
        self._step = 1  # ticks between expiries: 1, or SLOW_TICKS while the loop is idle
        self._idle_ns = 0  # the lateness of the tick that found the loop idle
        self._cpu_ns = 0  # the loop thread's CPU clock at the last slow expiry
        self._notice = notice
        self._counts: dict[int, array[int]] = {}  # per phase: samples per 10 µs bucket
        self._max: dict[int, int] = {}
        self._timer: TimerFd | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def started(
        cls,
        loop: asyncio.AbstractEventLoop,
        stamps: StampBuffer,
        schedule: Schedule,
        t0_ns: int,
        notice: ReadNotice | None = None,
    ) -> LoopLagProbe:
        """A probe running on ``loop`` from the run's start, its phases those of ``schedule``."""
        ends = list(accumulate(int(plan.duration_s * 1e9) for plan in schedule.phases))
        probe = cls(stamps, [t0_ns + end for end in ends], notice)
        probe.start(loop, t0_ns)
        return probe

    def start(self, loop: asyncio.AbstractEventLoop, start_ns: int) -> None:
        self._loop = loop
        self._due_ns = self._next_ns = max(start_ns, time.monotonic_ns()) + INTERVAL_NS
        self._timer = TimerFd.create()
        if self._timer is not None:
            self._timer.arm_every(self._due_ns, INTERVAL_NS)
            loop.add_reader(self._timer.fd, self._fired)
            if self._notice is not None:
                self._notice.notify = self._read
                self._notice.wanted = True
        else:
            self._handle = loop.call_later(INTERVAL_NS / 1e9, self._late_timer)

    # --- the timer ------------------------------------------------------------------------------

    def _fired(self) -> None:
        now = time.monotonic_ns()
        assert self._timer is not None
        count = self._timer.expirations()
        if not count:
            return
        served, step = self._next_ns, self._step
        if step > 1:
            self._fill(served, self._idle_ns)  # the ticks skipped since the last expiry
        lateness = max(now - served, 0)
        self._append(served, lateness)
        last = served + (count - 1) * step * INTERVAL_NS  # those in between: one sample
        self._due_ns = last + INTERVAL_NS
        self._next_ns = last + step * INTERVAL_NS
        notice = self._notice
        if notice is None:
            return
        idle = notice.wanted and lateness < QUIET_NS  # nothing read since the last expiry
        if idle and step == 1:
            self._idle_ns = lateness
            self._every(SLOW_TICKS, self._due_ns + (SLOW_TICKS - 1) * INTERVAL_NS)
        elif not idle and step > 1:  # a stall while slow: watch closely again from the next tick
            self._due_ns = _tick_after(now, served)
            self._every(1, self._due_ns)
        if self._step > 1:
            self._cpu_ns = time.thread_time_ns()
        notice.wanted = True

    def _read(self) -> None:
        """The sender's first read since the last expiry (its ``ReadNotice``)."""
        assert self._notice is not None
        self._notice.wanted = False
        if self._step > 1:
            self._resume(time.monotonic_ns())

    def _resume(self, now_ns: int) -> None:
        """Back to 1 ms ticks from a slow timer; the ticks it skipped up to now are counted."""
        busy = time.thread_time_ns() - self._cpu_ns  # CPU the loop spent since the last expiry
        stall = busy if busy > QUIET_NS else 0
        if self._next_ns <= now_ns:  # the slow expiry came due, not served yet: served now
            self._fill(self._next_ns, self._idle_ns)
            self._append(self._next_ns, max(now_ns - self._next_ns, stall))
            self._due_ns = _tick_after(now_ns, self._next_ns)  # the rest: the same stall
        else:
            if stall and self._due_ns <= now_ns:
                self._append(self._due_ns, stall)  # a stall that burnt CPU: as long as it was
                self._due_ns += INTERVAL_NS
            self._fill(now_ns + 1, self._idle_ns)
        self._every(1, self._due_ns)

    def _every(self, step: int, first_ns: int) -> None:
        assert self._timer is not None
        self._step, self._next_ns = step, first_ns
        self._timer.arm_every(first_ns, step * INTERVAL_NS)

    def _late_timer(self) -> None:
        now = time.monotonic_ns()
        self._append(self._due_ns, max(now - self._due_ns, 0))
        self._due_ns = now + INTERVAL_NS
        assert self._loop is not None
        self._handle = self._loop.call_later(INTERVAL_NS / 1e9, self._late_timer)

    # --- samples --------------------------------------------------------------------------------

    def _phase_of(self, due_ns: int) -> int:
        phase = min(bisect_right(self._ends, due_ns), len(self._ends) - 1)
        if phase != self._phase:
            self._hand_over_samples()
            self._phase = phase
        if not self._samples:
            self._first_ns = due_ns
        return phase

    def _append(self, due_ns: int, value: int) -> None:
        self._phase_of(due_ns)
        self._samples.append(value)

    def _fill(self, until_ns: int, value: int) -> None:
        """The 1 ms ticks from ``_due_ns`` up to ``until_ns`` (not included), each ``value``,
        in the phases they fall in."""
        due, last_phase = self._due_ns, len(self._ends) - 1
        while due < until_ns:
            phase = self._phase_of(due)
            limit = until_ns if phase == last_phase else min(self._ends[phase], until_ns)
            ticks = -(-(limit - due) // INTERVAL_NS)
            self._samples.extend(repeat(value, ticks))
            due += ticks * INTERVAL_NS
        self._due_ns = max(due, self._due_ns)

    def _hand_over_samples(self) -> None:
        samples = self._samples
        if not samples:
            return
        self._stamps.add_segment(self._phase, self._first_ns, samples, LOOP_LAG)
        counts = self._counts.get(self._phase)
        if counts is None:
            counts = self._counts[self._phase] = array("q", bytes(8 * BUCKETS))
        last = BUCKETS - 1
        for value in samples:
            counts[min(value // BUCKET_NS, last)] += 1
        self._max[self._phase] = max(self._max.get(self._phase, 0), max(samples))
        del samples[:]

    def p99_ms(self) -> dict[int, float]:
        """Per phase index, this process's own loop lag p99 (ms): the upper edge of the 10 µs
        bucket holding the sample of rank ⌈0.99 N⌉ (DESIGN §5's percentile), at most the
        largest sample. Read after ``stop``."""
        figures = {}
        for phase, counts in self._counts.items():
            (edge,) = bucket_percentiles(counts, _BUCKET_LOWS, _BUCKET_HIGHS, [99.0])
            top = min(int(edge), self._max[phase])
            figures[phase] = -(-top // 1000) / 1000  # µs, rounded up
        return figures

    def hand_over(self) -> None:
        """The samples since the last hand-over, to the stamp buffer (before its own). A slow
        timer is brought back to 1 ms ticks first: the hand-over's pipe write may block."""
        if self._step > 1 and self._timer is not None:
            self._resume(time.monotonic_ns())
        self._hand_over_samples()

    def stop(self) -> None:
        if self._timer is not None:
            if self._step > 1:
                self._fill(min(time.monotonic_ns() + 1, self._next_ns), self._idle_ns)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None
        if self._notice is not None:
            self._notice.wanted = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._hand_over_samples()


def _tick_after(now_ns: int, tick_ns: int) -> int:
    """The first 1 ms tick after ``now_ns`` on the grid of ``tick_ns`` (at or before it)."""
    return now_ns - (now_ns - tick_ns) % INTERVAL_NS + INTERVAL_NS
