"""A Linux timerfd on CLOCK_MONOTONIC: a file descriptor that becomes readable at a given instant.

Event-loop timers round to whole milliseconds (and the loop's cached time lags behind), so a
dispatcher sleeping on them wakes up to a millisecond off; a timerfd fires on the kernel's
high-resolution timer, to the microsecond, and the loop watches it like any socket. Called
through ctypes because ``os.timerfd_*`` only exists from Python 3.13.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

__all__ = ["TimerFd"]

_CLOCK_MONOTONIC = 1  # the clock of time.monotonic_ns on Linux
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p,
        ]  # fmt: skip
    except (OSError, AttributeError):
        return None
    return libc


class TimerFd:
    """One-shot timer armed for an absolute ``time.monotonic_ns()`` instant."""

    _LIBC = _libc()

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._spec = _Itimerspec()

    @classmethod
    def create(cls) -> TimerFd | None:
        """A new timer, or None where the platform has none (the caller falls back)."""
        if cls._LIBC is None:
            return None
        fd = cls._LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        return cls(fd) if fd >= 0 else None

    def arm_at(self, at_ns: int) -> None:
        """Fire at ``at_ns`` (at once if it has passed), replacing any earlier setting."""
        assert self._LIBC is not None
        # A zero it_value disarms the timer: an instant at the clock's origin means "now".
        seconds, nanoseconds = divmod(max(at_ns, 1), 1_000_000_000)
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = seconds, nanoseconds
        if self._LIBC.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, self._spec, None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def arm_every(self, first_ns: int, interval_ns: int) -> None:
        """Fire at ``first_ns`` and every ``interval_ns`` after it (a periodic timer)."""
        assert self._LIBC is not None
        interval = self._spec.it_interval
        interval.tv_sec, interval.tv_nsec = divmod(interval_ns, 1_000_000_000)
        self.arm_at(first_ns)

    def expirations(self) -> int:
        """How many times it fired since the last call (0 when it has not)."""
        try:
            return int.from_bytes(os.read(self.fd, 8), "little")
        except BlockingIOError:
            return 0

    def clear(self) -> None:
        """Consume the expiry count, so the descriptor stops being readable."""
        with contextlib.suppress(BlockingIOError):  # re-armed after it fired: nothing yet
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)
