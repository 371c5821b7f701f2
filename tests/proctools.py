"""Process checks shared by the tests that prove no server outlives infbench."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import psutil

__all__ = ["alive", "wait_for"]


def alive(pids: Iterable[int]) -> list[int]:
    """The pids still running (a zombie has ended; only its parent has not reaped it)."""
    living = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.append(pid)
        except psutil.NoSuchProcess:
            pass
    return living


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll every 50 ms until ``predicate()`` is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
