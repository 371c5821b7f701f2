"""The dispatching thread's place in the CPU queue: ahead of ordinary processes where allowed.

On a small machine the server under test shares cores with the generator, and the generator's
own write wakes the server, often onto the generator's core: the next arrival of a burst then
waits out the server's whole service time. Measured on the quickstart (2 cores, docs/
performance.md): at ordinary priority the second request of a burst left 1-4 ms late and no run
was valid; with the dispatching thread on SCHED_FIFO at the lowest real-time priority, lag p99
was 0.1-0.5 ms in every phase.

Real-time is only safe while the thread sleeps most of the time: one that never sleeps keeps
ordinary tasks off its core until the kernel takes the core back for them, 50 ms at a time
(measured: send lag p99 45 ms at 16,000/s). So the priority follows the thread's own CPU use,
checked at every hand-over: above ``BUSY_HIGH`` of its core it drops to normal, below
``BUSY_LOW`` it is raised again. Threads the loop starts are ordinary (SCHED_RESET_ON_FORK).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Literal

from infbench.errors import ScenarioError

__all__ = [
    "BUSY_HIGH",
    "BUSY_LOW",
    "DispatchPriority",
    "Priority",
    "dispatch_priority",
    "realtime_refused",
    "require_priority",
]

Priority = Literal["auto", "normal", "realtime"]
_REALTIME_PRIORITY = 1  # the lowest: kernel threads with real-time work still come first
BUSY_HIGH = 0.5  # share of its core above which the thread gives up real-time
BUSY_LOW = 0.25  # and below which it takes it back


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
    """The calling thread's priority over a measured window, following its CPU use."""

    def __init__(self, setting: Priority) -> None:
        self.setting = setting
        self.allowed = False  # the OS let the thread take real-time at least once
        self._previous: tuple[int, int] | None = None  # set while at real-time
        self._since_ns = 0  # when the current stretch at real-time began
        self.realtime_ns = 0
        self._mark = (0, 0)  # (monotonic, thread CPU) at the last check

    @property
    def realtime(self) -> bool:
        return self._previous is not None

    def start(self) -> None:
        self._mark = (time.monotonic_ns(), time.thread_time_ns())
        if self.setting != "normal":
            self._up(self._mark[0])
            self.allowed = self.realtime

    def check(self) -> None:
        """Compare the thread's CPU since the last check with the bounds; move if it crossed."""
        if not self.allowed:
            return
        now, cpu = time.monotonic_ns(), time.thread_time_ns()
        busy = (cpu - self._mark[1]) / max(now - self._mark[0], 1)
        self._mark = (now, cpu)
        if self.realtime and busy > BUSY_HIGH:
            self._down(now)
        elif not self.realtime and busy < BUSY_LOW:
            self._up(now)

    def stop(self) -> None:
        self._down(time.monotonic_ns())

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
