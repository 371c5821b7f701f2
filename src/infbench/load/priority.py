"""The dispatching thread's place in the CPU queue: ahead of ordinary processes where allowed.

On a small machine the server under test shares cores with the generator, and the generator's
own write wakes the server, often onto the generator's core: the next arrival of a burst then
waits for the server's whole service time. Measured on the quickstart (2 cores, docs/
performance.md): with ordinary priority the second request of a burst left 1-4 ms late and no
run was valid; with the dispatching thread on SCHED_FIFO at the lowest real-time priority, lag
p99 was 0.3-0.4 ms in every phase. Nothing else gets the priority: threads the loop starts go
back to normal (SCHED_RESET_ON_FORK), and the kernel keeps a share of each core for ordinary
tasks even if the generator never sleeps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal

from infbench.errors import ScenarioError

__all__ = ["Priority", "dispatch_priority", "realtime_refused", "require_priority"]

Priority = Literal["auto", "normal", "realtime"]
_REALTIME_PRIORITY = 1  # the lowest: kernel threads with real-time work still come first


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


@contextlib.contextmanager
def dispatch_priority(setting: Priority) -> Iterator[Literal["normal", "realtime"]]:
    """Run the block at the priority asked for (``auto``: real-time if allowed); yield which."""
    previous = None if setting == "normal" else _raise_to_realtime()
    if previous is None:
        yield "normal"
        return
    try:
        yield "realtime"
    finally:
        _restore(previous)
