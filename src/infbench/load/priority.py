"""The dispatching thread's place in the CPU queue: ahead of ordinary processes where allowed.

On a small machine the server under test shares cores with the generator, and the generator's
own write wakes the server, often onto the generator's core: the next arrival of a burst then
waits out the server's whole service time. Measured on the quickstart (2 cores, docs/
performance.md): at ordinary priority the second request of a burst left 1-4 ms late and no run
was valid; with the dispatching thread on SCHED_FIFO at the lowest real-time priority, lag p99
was 0.1-0.5 ms in every phase.

Real-time is only safe while the thread leaves its core free much of the time: one that never
sleeps keeps ordinary tasks off the core until the kernel takes it back for them, 50 ms at a
time (measured: send lag p99 45 ms at 16,000/s). So the priority follows the thread's own CPU
use, checked at every hand-over. It drops to normal when the thread's work (its CPU less the
deliberate polling before due times) passes ``WORK_HIGH`` of the core, or its CPU with the
polling passes ``CPU_HIGH``; it goes back up below ``WORK_LOW`` and ``CPU_LOW``. The polling
is counted apart because at low rates it is most of the CPU, yet it is exactly where real-time
helps (measured at 1,000/s: 35 % polling, 10 % work; dropped to normal on their sum, the
dispatcher was held up 2-3 ms at wake-ups and lag p99 passed 1 ms). Threads the loop starts
are ordinary (SCHED_RESET_ON_FORK).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Literal

from infbench.errors import ScenarioError

__all__ = [
    "CPU_HIGH",
    "CPU_LOW",
    "WORK_HIGH",
    "WORK_LOW",
    "DispatchPriority",
    "Priority",
    "dispatch_priority",
    "realtime_refused",
    "require_priority",
]

Priority = Literal["auto", "normal", "realtime"]
_REALTIME_PRIORITY = 1  # the lowest: kernel threads with real-time work still come first
WORK_HIGH, WORK_LOW = 0.5, 0.25  # shares of its core: real-time given up above, taken below
CPU_HIGH, CPU_LOW = 0.9, 0.7  # the same for its CPU with the polling


def _raise_to_realtime() -> tuple[int, int] | None:
    """Make the calling thread SCHED_FIFO; its previous policy and priority, None if refused."""
    if not hasattr(os, "sched_setscheduler"):
        return None
    try:
        previous = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
        policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy, os.sched_param(_REALTIME_PRIORITY))
    except OSError:
        return None
    return previous


def _restore(previous: tuple[int, int]) -> None:
    policy, priority = previous
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(priority))


def realtime_refused() -> bool:
    """Whether this process may not take a real-time priority (tried, then undone)."""
    previous = _raise_to_realtime()
    if previous is None:
        return True
    _restore(previous)
    return False


def require_priority(setting: Priority) -> None:
    """Refuse ``realtime`` up front, before a server is started, where it cannot be had."""
    if setting == "realtime" and realtime_refused():
        raise ScenarioError(
            "client.priority: realtime, but this process may not take a real-time priority "
            "(it needs root, CAP_SYS_NICE or a real-time limit: ulimit -r 1); use "
            "client.priority: auto (real-time where allowed) or normal"
        )


class DispatchPriority:
    """The calling thread's priority over a measured window, following its CPU use.

    ``now_ns`` and ``cpu_ns`` (the thread's CPU time) are injected by tests.
    """

    def __init__(
        self,
        setting: Priority,
        now_ns: Callable[[], int] = time.monotonic_ns,
        cpu_ns: Callable[[], int] = time.thread_time_ns,
    ) -> None:
        self.setting = setting
        self._now, self._cpu = now_ns, cpu_ns
        self.allowed = False  # the OS let the thread take real-time at least once
        self._previous: tuple[int, int] | None = None  # set while at real-time
        self._since_ns = 0  # when the current stretch at real-time began
        self.realtime_ns = 0
        self._mark = (0, 0, 0)  # (monotonic, thread CPU, polling) at the last check

    @property
    def realtime(self) -> bool:
        return self._previous is not None

    def start(self) -> None:
        self._mark = (self._now(), self._cpu(), 0)
        if self.setting != "normal":
            self._up(self._mark[0])
            self.allowed = self.realtime

    def check(self, spin_ns: int) -> None:
        """Compare the thread's CPU since the last check with the bounds; move if it crossed.
        ``spin_ns``: the clock's polling so far (``Clock.spin_ns``)."""
        if not self.allowed:
            return
        now, cpu = self._now(), self._cpu()
        wall = max(now - self._mark[0], 1)
        used = (cpu - self._mark[1]) / wall
        work = used - (spin_ns - self._mark[2]) / wall
        self._mark = (now, cpu, spin_ns)
        if self.realtime and (work > WORK_HIGH or used > CPU_HIGH):
            self._down(now)
        elif not self.realtime and work < WORK_LOW and used < CPU_LOW:
            self._up(now)

    def stop(self) -> None:
        self._down(self._now())

    @property
    def applied(self) -> Literal["normal", "realtime"]:
        return "realtime" if self.allowed else "normal"

    def _up(self, now: int) -> None:
        self._previous = _raise_to_realtime()
        self._since_ns = now

    def _down(self, now: int) -> None:
        if self._previous is not None:
            _restore(self._previous)
            self._previous = None
            self.realtime_ns += now - self._since_ns


@contextlib.contextmanager
def dispatch_priority(setting: Priority) -> Iterator[DispatchPriority]:
    """The block runs at the priority asked for (``auto``: real-time where allowed)."""
    priority = DispatchPriority(setting)
    priority.start()
    try:
        yield priority
    finally:
        priority.stop()
